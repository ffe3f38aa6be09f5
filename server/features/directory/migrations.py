"""Directory schema: departments, profiles, memberships, the change log and search keys.

Every change to a person (their user row, profile or memberships) or to a department bumps a
global directory version through triggers, in the same transaction as the change itself — so
no writer, in this feature or another, can forget to, and a client syncing "after version N"
can never miss one. The log keeps one row per person/department: the version of its latest
change, which is what sync pages through. PostgreSQL's scripts, a trigger function among them,
are in `migrations_postgresql.py`.
"""

from ...storage.migrations import Migration
from . import migrations_postgresql


def _bump(kind: str, entity: str) -> str:
    return (
        "INSERT OR REPLACE INTO directory_log (version, kind, entity_id) "
        f"VALUES ((SELECT coalesce(max(version), 0) + 1 FROM directory_log), '{kind}', {entity});"
    )


MIGRATIONS = (
    Migration(
        "directory.0001_initial",
        f"""
        CREATE TABLE departments (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES departments (id),
            name TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX departments_sibling_names ON departments (coalesce(parent_id, 0), name);
        CREATE TABLE profiles (
            user_id INTEGER PRIMARY KEY REFERENCES users (id),
            title TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            phone TEXT NOT NULL DEFAULT '',
            extension TEXT NOT NULL DEFAULT '',
            employee_no TEXT NOT NULL DEFAULT '',
            manager_id INTEGER REFERENCES users (id)
        );
        CREATE TABLE department_members (
            user_id INTEGER NOT NULL REFERENCES users (id),
            department_id INTEGER NOT NULL REFERENCES departments (id),
            PRIMARY KEY (user_id, department_id)
        ) WITHOUT ROWID;
        CREATE INDEX department_members_department ON department_members (department_id);
        CREATE TABLE directory_log (
            version INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            entity_id INTEGER NOT NULL,
            UNIQUE (kind, entity_id)
        );
        CREATE TABLE search_keys (
            user_id INTEGER PRIMARY KEY REFERENCES users (id),
            key TEXT NOT NULL
        );
        CREATE TABLE search_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );
        INSERT INTO search_state VALUES (1, 0);
        INSERT INTO directory_log (version, kind, entity_id)
            SELECT row_number() OVER (ORDER BY id), 'person', id FROM users;
        CREATE TRIGGER directory_user_added AFTER INSERT ON users BEGIN {_bump("person", "NEW.id")} END;
        CREATE TRIGGER directory_user_changed AFTER UPDATE OF username, display_name, role, active ON users
            BEGIN {_bump("person", "NEW.id")} END;
        CREATE TRIGGER directory_profile_added AFTER INSERT ON profiles BEGIN {_bump("person", "NEW.user_id")} END;
        CREATE TRIGGER directory_profile_changed AFTER UPDATE ON profiles BEGIN {_bump("person", "NEW.user_id")} END;
        CREATE TRIGGER directory_member_added AFTER INSERT ON department_members BEGIN {_bump("person", "NEW.user_id")} END;
        CREATE TRIGGER directory_member_removed AFTER DELETE ON department_members BEGIN {_bump("person", "OLD.user_id")} END;
        CREATE TRIGGER directory_department_added AFTER INSERT ON departments BEGIN {_bump("department", "NEW.id")} END;
        CREATE TRIGGER directory_department_changed AFTER UPDATE ON departments BEGIN {_bump("department", "NEW.id")} END;
        """,
        postgresql=migrations_postgresql.INITIAL,
    ),
    Migration(
        "directory.0002_source_and_removal",
        f"""
        ALTER TABLE departments ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
        CREATE TRIGGER directory_department_removed AFTER DELETE ON departments BEGIN {_bump("department", "OLD.id")} END;
        """,
        postgresql=migrations_postgresql.SOURCE_AND_REMOVAL,
    ),
)
