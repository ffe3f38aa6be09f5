"""Policies schema: who administers which departments, and the rules IT admins set
(PostgreSQL's script is in `migrations_postgresql.py`)."""

from ...storage.migrations import Migration
from . import migrations_postgresql

MIGRATIONS = (
    Migration(
        "policies.0001_initial",
        """
        CREATE TABLE department_admins (
            user_id INTEGER NOT NULL REFERENCES users (id),
            department_id INTEGER NOT NULL REFERENCES departments (id),
            PRIMARY KEY (user_id, department_id)
        ) WITHOUT ROWID;
        CREATE TABLE policy_rules (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            department_id INTEGER REFERENCES departments (id),
            subjects TEXT NOT NULL
        );
        CREATE UNIQUE INDEX policy_rules_target ON policy_rules (kind, coalesce(department_id, 0));
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
)
