"""Reading a CSV file of people (and departments) for a bulk import, checked row by row.

Columns (a header row names them, in any order; only `username` and `display_name` are
required): username, display_name, title, email, phone, extension, employee_no, departments,
manager, role, active. `departments` holds paths from the top of the tree, "/" between levels
and ";" between several ("Engineering/Platform;Projects/Apollo"). A row with no username but
a department path creates an empty department. `active` is yes/no (default yes); `role` left
empty keeps an existing user's role.

Every problem is reported with its line number before anything is sent, so a file with a bad
row imports nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from corridor.protocol.errors import CorridorError
from corridor.protocol.messages import ImportPerson
from corridor.protocol.names import USERNAME, USERNAME_RULE

COLUMNS = (
    "username",
    "display_name",
    "title",
    "email",
    "phone",
    "extension",
    "employee_no",
    "departments",
    "manager",
    "role",
    "active",
)
REQUIRED = ("username", "display_name")
MAX_PROBLEMS = 50
_YES, _NO = {"", "yes", "y", "true", "1"}, {"no", "n", "false", "0"}


class CsvProblems(ValueError):
    """The file has bad rows: each problem names its line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = f"\n… and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("\n".join(shown) + more)


@dataclass(frozen=True)
class ImportFile:
    """What a CSV file holds, checked."""

    people: list[ImportPerson]
    departments: list[tuple[str, ...]]


def _paths(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(part.strip() for part in path.split("/")) for path in text.split(";") if path.strip())


def read_import_csv(path: Path) -> ImportFile:
    """Read and check the whole file; raises CsvProblems listing every bad row, or OSError."""
    problems: list[str] = []
    people: list[ImportPerson] = []
    departments: list[tuple[str, ...]] = []
    seen: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or ()]
        unknown = [name for name in header if name not in COLUMNS]
        missing = [name for name in REQUIRED if name not in header]
        if unknown or missing:
            what = [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
            what += [f"missing column(s) {', '.join(missing)}"] if missing else []
            raise CsvProblems([f"{path}:1: {'; '.join(what)} (columns: {', '.join(COLUMNS)})"])
        reader.fieldnames = header
        try:
            for row in reader:
                line = reader.line_num
                where = f"{path}:{line}"
                if None in row:
                    problems.append(f"{where}: more fields than columns")
                    continue
                values = {k: (v or "").strip() for k, v in row.items()}
                paths = _paths(values.get("departments", ""))
                if any(not all(paths_part for paths_part in p) for p in paths):
                    problems.append(f"{where}: a department path has an empty part: {values['departments']!r}")
                    continue
                if not values["username"]:
                    if paths and not values["display_name"]:
                        departments.extend(paths)
                    else:
                        problems.append(f"{where}: no username (a row without one only names departments)")
                    continue
                username = values["username"].lower()
                if not USERNAME.match(username):
                    problems.append(f"{where}: username {values['username']!r}: {USERNAME_RULE}")
                    continue
                if username in seen:
                    problems.append(f"{where}: username {username!r} is already on line {seen[username]}")
                    continue
                seen[username] = line
                active = values.get("active", "").lower()
                if active not in _YES | _NO:
                    problems.append(f"{where}: active must be yes or no, not {values['active']!r}")
                    continue
                fields = {k: v for k, v in values.items() if k not in ("departments", "active", "role") and v}
                fields.update(username=username, departments=[list(p) for p in paths], active=active in _YES)
                if values.get("role"):
                    fields["role"] = values["role"]
                try:
                    people.append(ImportPerson.from_fields(fields))
                except CorridorError as exc:
                    problems.append(f"{where}: {exc.message}")
        except csv.Error as exc:
            problems.append(f"{path}:{reader.line_num}: not valid CSV: {exc}")
    if problems:
        raise CsvProblems(problems)
    return ImportFile(people, departments)
