"""`python -m services calculator|requester|recorder`; configuration from the environment."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any

from services import logs, metrics
from services.connect import CLOSE_SECONDS, connect, stop_within
from services.settings import (
    CalculatorSettings,
    ControlSettings,
    MetricsSettings,
    NatsSettings,
    RecorderSettings,
    RequesterSettings,
    SettingsError,
)

USAGE = "usage: python -m services calculator|requester|recorder|control"


async def _requester() -> int:
    from services.requester import run  # noqa: PLC0415

    settings = NatsSettings.from_env("requester")
    work = RequesterSettings.from_env()
    served = MetricsSettings.from_env()
    metrics.serve(served)
    logger = logs.setup("requester", settings.region)
    client = await connect(settings, logger)
    summary = await run(client, settings, work)
    await stop_within(client, logger, client.drain)
    print(json.dumps(summary.as_dict()), flush=True)
    await asyncio.sleep(served.linger_seconds)  # for a scrape to see the run's totals
    return 0 if summary.failed == 0 else 1


async def _recorder() -> int:
    from services.recorder import serve  # noqa: PLC0415
    from services.recorder_db import Database, MySql, Sqlite  # noqa: PLC0415

    settings = NatsSettings.from_env("recorder")
    database = RecorderSettings.from_env()
    metrics.serve(MetricsSettings.from_env())
    logger = logs.setup("recorder", settings.region)
    client = await connect(settings, logger)
    db: Database = Sqlite(database.db_path) if database.driver == "sqlite" else MySql(database)
    try:
        await serve(client, db, database, logger, settings.region)
    finally:
        db.close()
        # Everything taken was acknowledged or will be redelivered; drain() can wait forever
        # on a pull subscription, so flush the acks and close.
        await stop_within(client, logger, client.flush)
    return 0


async def _calculator() -> int:
    from services.calculator import serve  # noqa: PLC0415

    settings, calculator = NatsSettings.from_env("calculator"), CalculatorSettings.from_env()
    metrics.serve(MetricsSettings.from_env())
    await serve(settings, calculator)
    return 0


async def _control() -> int:
    from services.control import serve  # noqa: PLC0415

    settings, control = NatsSettings.from_env("control"), ControlSettings.from_env()
    metrics.serve(MetricsSettings.from_env())
    await serve(settings, control)
    return 0


def _run(program: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, except for what is still running when the program has returned (a stop
    that gave up, services/connect.py): cancelled and given CLOSE_SECONDS, then left to the
    process's end. nats-py can swallow the cancel and wait out a 10 s flush and a 30 s TLS close,
    which asyncio.run would wait for."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(program)
    finally:
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=CLOSE_SECONDS))
        # Tasks still pending are destroyed at exit; that is not an error to report.
        loop.set_exception_handler(lambda _loop, _context: None)
        loop.close()
        asyncio.set_event_loop(None)


def main(argv: list[str]) -> int:
    programs = {
        "calculator": _calculator,
        "requester": _requester,
        "recorder": _recorder,
        "control": _control,
    }
    if len(argv) != 1 or argv[0] not in programs:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return _run(programs[argv[0]]())
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
