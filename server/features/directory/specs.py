"""The desired state of the directory, as a source (a CSV import, an LDAP tree) describes it.

People are the protocol's `ImportPerson` records, so an LDAP sync and a CSV import feed the
same `importer.plan`. Departments are named by their path from the top of the tree, so a
source never needs to know our ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from corridor.protocol.messages import ImportPerson

DepartmentPath = tuple[str, ...]


@dataclass(frozen=True)
class DirectorySpec:
    """Everything a source says: departments (also those with nobody in them) and people."""

    departments: tuple[DepartmentPath, ...] = ()
    people: tuple[ImportPerson, ...] = ()
