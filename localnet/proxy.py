"""A TCP load balancer for the local regions: round-robin over a region's servers, like the cloud
load balancer in front of the NATS pods. It can add a delay per direction (a stand-in for the
distance between regions) and be cut and restored (a partition)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Coroutine, Sequence
from typing import Any


class TcpProxy:
    def __init__(
        self,
        listen: tuple[str, int],
        targets: Sequence[tuple[str, int]],
        *,
        one_way_delay_ms: float = 0.0,
    ) -> None:
        self.listen = listen
        self.targets = list(targets)
        self.one_way_delay = one_way_delay_ms / 1000
        self._next = itertools.cycle(range(len(self.targets)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())

    def stop(self) -> None:
        if not self._thread.is_alive():  # never started (a signal came first): nothing to close
            self._loop.close()
            return
        self._call(self._close())
        self._call(self._cancel_connections())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def retarget(self, targets: Sequence[tuple[str, int]]) -> None:
        """New backends for new connections, as a Service follows its pods."""
        self.targets = list(targets)
        self._next = itertools.cycle(range(len(self.targets)))

    def cut(self) -> None:
        """Stop accepting and drop every connection, as a lost link between regions."""
        self._call(self._close())

    def restore(self) -> None:
        self._call(self._open())

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, *self.listen)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        writers = list(self._connections)
        self._connections.clear()
        for writer in writers:
            writer.close()
        # close() only schedules the socket's closing; wait for it, so that no socket outlives
        # the proxy's event loop.
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)

    async def _cancel_connections(self) -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0)  # let the cancelled connections' closing callbacks run

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in self.targets:
            host, port = self.targets[next(self._next)]
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection(host, port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        self._connections.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping: end quietly, the sockets are closed below
        finally:
            for end in (writer, up_writer):
                end.close()
                self._connections.discard(end)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward in order; with a delay, each chunk leaves `one_way_delay` after it arrived
        (a latency, like distance, not a pause per chunk that would also cut throughput)."""
        if not self.one_way_delay:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.one_way_delay, data))
            queue.put_nowait((loop.time() + self.one_way_delay, b""))
            await sender
        finally:
            sender.cancel()
            writer.close()
