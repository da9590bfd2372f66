"""`python -m services calculator|requester|recorder`; configuration from the environment."""

from __future__ import annotations

import asyncio
import json
import sys

from services import logs, metrics
from services.connect import connect, stop_within
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
    from services.recorder import Database, MySql, Sqlite, serve  # noqa: PLC0415

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
        return asyncio.run(programs[argv[0]]())
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
