"""`tocsin connect` refuses a bad file with one line on stderr and exit status 1, before Kafka is touched
(the bootstrap server given here does not exist)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tocsin.cli import app

NOWHERE = ["-b", "127.0.0.1:9"]  # nothing listens there: the file is refused before any connection


def connect(*args: str):
    return CliRunner().invoke(app, ["connect", *args, *NOWHERE])


@pytest.mark.parametrize(
    ("command", "name", "content", "message"),
    [
        (
            "ucdp",
            "ged_old.csv",
            "id,year,type_of_violence,date_start,country\n1,1989,3,1989-01-01,Syria\n",
            "error: ged_old.csv: missing required column(s): best "
            "(the header has: id, year, type_of_violence, date_start, country)",
        ),
        (
            "reliefweb-csv",
            "South_Sudan.csv",
            "id,created,url\n633299,2014-01-29,http://reliefweb.int/node/633299\n",
            "error: South_Sudan.csv: missing required column(s): title (the header has: id, created, url)",
        ),
        (
            "reliefweb-csv",
            "latin1.csv",
            b"id,title,created\n1,caf\xe9,2014-01-29\n",
            "error: latin1.csv: not UTF-8 text (invalid continuation byte)",
        ),
        (
            "ucdp",
            "empty.csv",
            "",
            "error: empty.csv: missing required column(s): id, type_of_violence, "
            "date_start, best, country_id or country (the file is empty)",
        ),
    ],
)
def test_a_bad_file_is_one_line_on_stderr_and_exit_1(tmp_path, command, name, content, message):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    result = connect(command, str(path))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert result.stderr == message + "\n" and result.stdout == ""


def test_the_country_of_a_listing_must_be_an_iso3_code(tmp_path):
    path = tmp_path / "South_Sudan.csv"
    path.write_text("id,title,created\n")
    result = connect("reliefweb-csv", str(path), "--country", "Sudan")
    assert result.exit_code == 2
    words = " ".join(result.stderr.replace("│", " ").split())  # typer draws usage errors in a box
    assert "Invalid value for '--country': 'Sudan' is not an ISO 3166-1 alpha-3 country code" in words


def test_reliefweb_csv_is_a_connect_command():
    result = CliRunner().invoke(app, ["connect", "reliefweb-csv", "--help"])
    assert result.exit_code == 0 and "--country" in result.stdout and "--speed" in result.stdout
