"""The store's SQLite schema as numbered migrations; `migrate` brings any older database up to date."""

from __future__ import annotations

import logging
import sqlite3

from edge.errors import StoreError

log = logging.getLogger(__name__)

# Append only: a released migration never changes, a new one gets the next number.
MIGRATIONS: list[str] = [
    # 1: labels, images, annotations, settings, zones
    """
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        description TEXT NOT NULL DEFAULT '',
        color TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        ext TEXT NOT NULL,
        size INTEGER NOT NULL,
        filename TEXT,
        camera TEXT,
        captured_at TEXT,
        created TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        split TEXT NOT NULL DEFAULT 'auto' CHECK (split IN ('train', 'val', 'test', 'auto')),
        phash TEXT NOT NULL,
        near_duplicate_of INTEGER REFERENCES images(id) ON DELETE SET NULL
    );
    CREATE INDEX images_camera ON images(camera);
    CREATE INDEX images_split ON images(split);
    CREATE INDEX images_near_duplicate_of ON images(near_duplicate_of);
    CREATE TABLE image_tags (
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        PRIMARY KEY (image_id, label_id)
    );
    CREATE INDEX image_tags_label ON image_tags(label_id);
    CREATE TABLE boxes (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        CHECK (0 <= x1 AND x1 < x2 AND x2 <= 1 AND 0 <= y1 AND y1 < y2 AND y2 <= 1)
    );
    CREATE INDEX boxes_image ON boxes(image_id);
    CREATE INDEX boxes_label ON boxes(label_id);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE zones (
        camera_id TEXT PRIMARY KEY,
        zones TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
    # 2: projects. Every label and image belongs to one; what existed moves into project 1, "default", whose task
    # stays "auto" (NULL: detection once any box exists, or the review page's choice). Label names are unique per
    # project, and so is an image's content (two projects may hold the same photo; the file is shared).
    # Tables are rebuilt (SQLite cannot change a UNIQUE constraint in place) with foreign keys off: `migrate`.
    """
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        task TEXT CHECK (task IN ('classification', 'detection')),
        created TEXT NOT NULL
    );
    INSERT INTO projects (id, name, task, created) VALUES (1, 'default', NULL, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
    CREATE TABLE labels_v2 (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name TEXT NOT NULL COLLATE NOCASE,
        description TEXT NOT NULL DEFAULT '',
        color TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (project_id, name)
    );
    INSERT INTO labels_v2 (id, project_id, name, description, color, created)
        SELECT id, 1, name, description, color, created FROM labels;
    DROP TABLE labels;
    ALTER TABLE labels_v2 RENAME TO labels;
    CREATE TABLE images_v2 (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        ext TEXT NOT NULL,
        size INTEGER NOT NULL,
        filename TEXT,
        camera TEXT,
        captured_at TEXT,
        created TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        split TEXT NOT NULL DEFAULT 'auto' CHECK (split IN ('train', 'val', 'test', 'auto')),
        phash TEXT NOT NULL,
        near_duplicate_of INTEGER REFERENCES images(id) ON DELETE SET NULL,
        UNIQUE (project_id, sha256)
    );
    INSERT INTO images_v2 (id, project_id, sha256, ext, size, filename, camera, captured_at, created, width, height,
                           split, phash, near_duplicate_of)
        SELECT id, 1, sha256, ext, size, filename, camera, captured_at, created, width, height, split, phash,
               near_duplicate_of FROM images;
    DROP TABLE images;
    ALTER TABLE images_v2 RENAME TO images;
    CREATE INDEX images_camera ON images(camera);
    CREATE INDEX images_split ON images(project_id, split);
    CREATE INDEX images_near_duplicate_of ON images(near_duplicate_of);
    CREATE INDEX images_sha256 ON images(sha256);
    CREATE INDEX labels_project ON labels(project_id);
    """,
    # 3: model-assisted labelling (edge.store.assist_rows): a model's suggestions for an image, kept apart from its
    # annotations (a suggestion becomes an annotation only by a person's accept), and the device's inbox of frames
    # kept for review with the reason each was kept.
    """
    CREATE TABLE suggestions (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        version TEXT NOT NULL,
        created TEXT NOT NULL,
        tags TEXT NOT NULL,
        boxes TEXT NOT NULL,
        margin REAL,
        embedding BLOB
    );
    CREATE INDEX suggestions_version ON suggestions(version);
    CREATE TABLE inbox (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
        reason TEXT NOT NULL,
        camera TEXT,
        created TEXT NOT NULL
    );
    CREATE INDEX inbox_created ON inbox(created);
    """,
    # 4: an image marked "nothing to box" (a detection photo with no gaps): tagged, with no boxes and no tags.
    """
    CREATE TABLE nothing_to_box (
        image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
DEFAULT_PROJECT_ID = 1


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _statements(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def migrate(conn: sqlite3.Connection, source: str) -> int:
    """Apply every migration the database lacks, all in one transaction; returns the final version."""
    # Foreign keys off while tables are rebuilt: dropping the old table must not cascade into the rows that refer
    # to it (SQLite's documented procedure for schema changes); checked before the commit, on again after.
    conn.execute("PRAGMA foreign_keys=OFF")
    # The write lock is taken before the version is read, so two processes opening a new data_dir at once
    # cannot both run the same migration.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{source} has schema version {version}, newer than this shelfwatch knows ({SCHEMA_VERSION}); "
                "upgrade shelfwatch or use another data_dir"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            log.info("dataset store %s migrated to schema %s", source, number)
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(f"{source}: migration to schema {SCHEMA_VERSION} left dangling references: {broken[:5]}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return SCHEMA_VERSION
