"""A pure-Python reference for the chess source: the logic of dlt's verified `chess`
source (written anew here, not copied), with its base URLs made configurable so it can
run against the local replica. HTTP goes through dlt's requests helper, rows go through
dlt's normal dict path, archives are fetched in parallel with `dlt.defer` (5 workers).

Used by tests/test_chess.py (the tables dltc must match) and by `dltc.bench chess`.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional

import dlt
from dlt.common import pendulum
from dlt.sources.helpers import requests

OFFICIAL_URL = "https://api.chess.com/pub/"
UNOFFICIAL_URL = "https://www.chess.com/callback/"


def _check_month(value: Optional[str]) -> None:
    # the verified source only checks the separator position
    if value and value[4] != "/":
        raise ValueError(value)


def _get(url: str, verify: Any) -> Any:
    return requests.get(url, verify=verify).json()


@dlt.source(name="chess")
def source(
    players: List[str] = dlt.config.value,
    start_month: Optional[str] = None,
    end_month: Optional[str] = None,
    base_url: str = OFFICIAL_URL,
    callback_url: str = UNOFFICIAL_URL,
    ca_file: Optional[str] = None,
) -> Any:
    verify: Any = ca_file if ca_file else True

    @dlt.resource(
        write_disposition="replace",
        columns={"last_online": {"data_type": "timestamp"}, "joined": {"data_type": "timestamp"}},
    )
    def players_profiles() -> Iterator[Any]:
        @dlt.defer
        def profile(username: str) -> Any:
            return _get(f"{base_url}player/{username}", verify)

        for username in players:
            yield profile(username)

    @dlt.resource(write_disposition="replace", selected=False)
    def players_archives() -> Iterator[List[str]]:
        for username in players:
            yield _get(f"{base_url}player/{username}/games/archives", verify).get("archives", [])

    @dlt.resource(write_disposition="append", columns={"end_time": {"data_type": "timestamp"}})
    def players_games() -> Iterator[Any]:
        _check_month(start_month)
        _check_month(end_month)
        checked = dlt.current.resource_state().setdefault("archives", [])

        @dlt.defer
        def archive(url: str) -> List[Any]:
            try:
                return requests.get(url, verify=verify).json().get("games", [])  # type: ignore
            except requests.HTTPError as err:
                if err.response.status_code == 404:
                    return []
                raise

        for url in players_archives():
            month = url[-7:]
            if start_month and month < start_month:
                continue
            if end_month and month > end_month:
                continue
            if url in checked:
                continue
            checked.append(url)
            yield archive(url)

    @dlt.resource(write_disposition="append")
    def players_online_status() -> Iterator[Any]:
        for player in players:
            status = _get(f"{callback_url}user/popup/{player}", verify)
            yield {
                "username": player,
                "onlineStatus": status["onlineStatus"],
                "lastLoginDate": status["lastLoginDate"],
                "check_time": pendulum.now(),
            }

    return players_profiles, players_archives, players_games, players_online_status
