"""The recorder's database in the local supercluster: the embedded SQLite file, or a MySQL the
user names, whose password never goes on a command line."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit


def database_env(mysql: str | None, state_dir: Path) -> dict[str, str]:
    """The recorder's database settings, for its environment (readable by this user alone)."""
    if mysql is None:
        return {"DB_DRIVER": "sqlite", "DB_PATH": str(state_dir / "answers.db")}
    url = urlsplit(mysql)
    return {
        "DB_DRIVER": "mysql",
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port or 3306),
        "DB_USER": unquote(url.username or ""),
        "DB_PASSWORD": unquote(url.password or ""),
        "DB_NAME": url.path.lstrip("/") or "answers",
    }


def mysql_url(url: str, environ: Mapping[str, str], password_file: Path | None) -> str:
    """`--mysql mysql://user@host:port/db` with the password from `password_file` or
    MYSQL_PASSWORD: a command line is visible to every user of the machine (ps, /proc)."""
    parsed = urlsplit(url)
    if parsed.scheme != "mysql" or not parsed.hostname:
        raise ValueError(f"--mysql must look like mysql://user@host:port/db, got {parsed.scheme!r}")
    if parsed.password is not None:
        raise ValueError(
            "--mysql must not carry a password: every user of this machine can read a command "
            "line; put it in MYSQL_PASSWORD or a file named by --mysql-password-file"
        )
    if password_file is not None:
        password = password_file.read_text().rstrip("\n")
    else:
        password = environ.get("MYSQL_PASSWORD", "")
    if not password:
        return url
    user = quote(parsed.username or "", safe="")
    host = parsed.netloc.rpartition("@")[2]
    return urlunsplit(parsed._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def count_records(mysql: str | None, state_dir: Path) -> int:
    """Answers the recorder stored so far (distinct request ids), in MySQL or the embedded
    database; 0 before the recorder made its table."""
    if mysql is not None:
        import pymysql  # noqa: PLC0415 (only with --mysql)

        env = database_env(mysql, state_dir)
        with (
            pymysql.connect(
                host=env["DB_HOST"],
                port=int(env["DB_PORT"]),
                user=env["DB_USER"],
                password=env["DB_PASSWORD"],
                database=env["DB_NAME"],
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT COUNT(DISTINCT request_id) FROM answers")
            found = cursor.fetchone()
            return int(found[0]) if found else 0
    path = state_dir / "answers.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as embedded:
        try:
            row = embedded.execute("SELECT COUNT(DISTINCT request_id) FROM answers")
        except sqlite3.OperationalError:
            return 0
        return int(row.fetchone()[0])
