"""Site database benchmark: ``python -m bench.sitedb [--url URL] [--workers N] [--threads T] [--keep]``.

Not part of the test suite. One command that prints everything and writes
``bench/results/sitedb.json`` (one entry per backend, updated in place). Backends: SQLite (a file
in a temporary folder, or a kept one with ``--keep``) and, when ``--url`` or
``$PLASTICS_TEST_DATABASE_URL`` names one, PostgreSQL + PostGIS (e.g. the server
``.ci/with-services`` starts). ``--backends`` picks among them. On each:

1. ``publish``: :func:`plastics_core.sitedb.publish.publish_roi` of one ROI with ``--publish-sites``
   sites (one window: a detection and a contour each) into the database, then the same
   publication again (every row unchanged).
2. ``load``: ``--sites`` sites over ``--rois`` ROIs with ``--contours-per-site`` contours each
   (bulk-loaded with the schema's tables; skipped when a kept database already holds them).
3. ``bbox_http``: ``plastics serve --workers N`` started on 127.0.0.1 (a free port), then
   ``GET /sites?bbox=`` of random 1 x 1 degree boxes (default page of 100) from ``--clients``
   concurrent keep-alive HTTP/1.1 clients (httptools' parser on uvloop, one process): latency percentiles in ms,
   requests per second, the CPU time per request of the clients, of the server's processes and
   of the PostgreSQL processes, and the machine (CPU model, cores) with its load average before
   and after.

Seeded (same sites and boxes every run). ``--keep`` leaves the bench rows in the database and
reuses them next time (the 1,000,000-contour load takes minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import box
from sqlalchemy import Engine, delete, func, insert, select, text

from plastics_core.method.enrich import site_id as h3_id
from plastics_core.sitedb.engine import open_database, shown_url
from plastics_core.sitedb.page_feature import render_missing
from plastics_core.sitedb.publish import RunInfo, publish_roi
from plastics_core.sitedb.schema import Contour, Detection, Run, Site, table

SEED = 20210713
#: where the synthetic sites lie (lon/lat degrees): roughly Indonesia's extent
REGION = (95.0, -11.0, 141.0, 6.0)
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """CPU model, core count and memory of this machine."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = (
            next(
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
            / 1024**2
        )
    except (OSError, StopIteration):
        mem = float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB"


def publish_inputs(n: int, seed: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """A registry of ``n`` sites (one window) and its enriched sites / contours."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(REGION[0], REGION[2], n)
    lat = rng.uniform(REGION[1], REGION[3], n)
    window = "2021-01-01"
    ids = [h3_id(float(x), float(y)) for x, y in zip(lon, lat, strict=True)]
    ids = [f"{i}-{k}" for k, i in enumerate(ids)]  # unique even where two points share a cell
    score = rng.uniform(0.6, 1.0, n)
    registry = gpd.GeoDataFrame(
        {
            "site_id": ids,
            "status": "new",
            "first_window": window,
            "last_window": window,
            "n_windows": 1,
            "windows": json.dumps([window]),
            "name": [f"site_{k}" for k in range(n)],
            "lon": lon,
            "lat": lat,
            "score_latest": score,
            "patch_latest": score,
            "score_max": score,
            "area_km2_latest": 0.02,
            "pixel_scores": "{}",
            "patch_scores": "{}",
            "areas_km2": "{}",
            "site_ids": [json.dumps([i]) for i in ids],
            "address": "Desa, Kabupaten, Indonesia",
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    enriched = gpd.GeoDataFrame(
        {
            "site_id": ids,
            "name": registry["name"],
            "lon": lon,
            "lat": lat,
            "score": score,
            "patch_mean": score,
            "n_frames": 1,
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    outlines = gpd.GeoDataFrame(
        {"name": registry["name"], "date": window, "area_km2": 0.02},
        geometry=[box(x - 0.0007, y - 0.0007, x + 0.0007, y + 0.0007) for x, y in zip(lon, lat, strict=True)],
        crs="EPSG:4326",
    )
    return registry, {window: (enriched, outlines)}


def bench_publish(engine: Engine, n: int) -> dict[str, Any]:
    registry, per_window = publish_inputs(n, SEED)
    run = RunInfo("b0b0b0b0b0b0", "publish_bench")
    with engine.begin() as conn:  # a kept database: publish as new again
        for model in (Contour, Detection, Site, Run):
            conn.execute(delete(table(model)).where(table(model).c.run_hash == run.run_hash))
    t0 = time.perf_counter()
    first = publish_roi(engine, run, registry, per_window)
    t1 = time.perf_counter()
    again = publish_roi(engine, run, registry, per_window)
    t2 = time.perf_counter()
    return {
        "sites": n,
        "first_s": round(t1 - t0, 2),
        "first_rows_added": first.metadata()["added"],
        "republish_s": round(t2 - t1, 2),
        "republish_rows_unchanged": again.metadata()["unchanged"],
    }


_PG_RUNS = """
INSERT INTO runs (run_hash, roi, params, model_checksums, imagery_source, code_version, sequence, published_at)
SELECT lpad(to_hex(r), 12, '0'), 'bench_' || lpad(r::text, 3, '0'), '{}', '{}', 'bench', '1', 1, now()
FROM generate_series(0, :n_rois - 1) AS r
"""
_PG_SITES = """
INSERT INTO sites (run_hash, roi, site_id, name, status, first_window, last_window, n_windows, lon, lat,
                   score_latest, patch_latest, score_max, area_km2_latest, address, pixel_scores, patch_scores,
                   areas_km2, site_ids, digest, geom)
SELECT lpad(to_hex(g % :n_rois), 12, '0'), 'bench_' || lpad((g % :n_rois)::text, 3, '0'), 'b' || g, 'site_' || g,
       'new', DATE '2019-01-01', DATE '2021-12-01', :per_site, lon, lat, 0.9, 0.9, 0.9, 0.02, '', '{}', '{}', '{}',
       '[]', repeat('0', 64), ST_SetSRID(ST_MakePoint(lon, lat), 4326)
FROM (SELECT g, :x0 + random() * (:x1 - :x0) AS lon, :y0 + random() * (:y1 - :y0) AS lat
      FROM generate_series(0, :n_sites - 1) AS g) AS p
"""
_PG_CONTOURS = """
INSERT INTO contours (run_hash, roi, site_id, date, "window", area_km2, digest, geom)
SELECT s.run_hash, s.roi, s.site_id, DATE '2019-01-01' + make_interval(months => m), DATE '2019-01-01'
       + make_interval(months => m), 0.01, repeat('0', 64),
       ST_Multi(ST_MakeEnvelope(s.lon - h, s.lat - h, s.lon + h, s.lat + h, 4326))
FROM sites AS s CROSS JOIN generate_series(0, :per_site - 1) AS m
CROSS JOIN LATERAL (SELECT 0.0005 + 0.0001 * (m % 5) AS h) AS half
WHERE s.roi LIKE 'bench\\_%'
"""


def bench_rows(engine: Engine) -> tuple[int, int]:
    """(sites, contours) of the bench ROIs (``bench_*``) the database holds."""
    sites, contours = table(Site), table(Contour)
    with engine.connect() as conn:
        n_sites = conn.execute(
            select(func.count()).where(sites.c.roi.like("bench\\_%", escape="\\"))
        ).scalar_one()
        n_contours = conn.execute(
            select(func.count()).where(contours.c.roi.like("bench\\_%", escape="\\"))
        ).scalar_one()
    return int(n_sites), int(n_contours)


def drop_bench_rows(engine: Engine) -> None:
    """Delete the bench ROIs' runs, sites, detections and contours."""
    with engine.begin() as conn:
        for model in (Contour, Detection, Site, Run):
            tbl = table(model)
            conn.execute(delete(tbl).where(tbl.c.roi.like("bench\\_%", escape="\\")))


def bulk_load(engine: Engine, n_sites: int, n_rois: int, per_site: int, seed: int) -> dict[str, Any]:
    """``n_sites`` sites over ``n_rois`` ROIs (one run each), ``per_site`` monthly contours each:
    generated by the server on PostgreSQL (seeded ``random()``), vectorized inserts on SQLite;
    then each site's stored ``/sites`` Feature (:func:`render_missing`).
    Reused (``load_s`` None) when the database already holds exactly that many bench rows."""
    if bench_rows(engine) == (n_sites, n_sites * per_site):
        return {
            "sites": n_sites,
            "contours": n_sites * per_site,
            "rois": n_rois,
            "load_s": None,
            "reused": True,
        }
    drop_bench_rows(engine)
    t0 = time.perf_counter()
    region = {"x0": REGION[0], "y0": REGION[1], "x1": REGION[2], "y1": REGION[3]}
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
            conn.execute(text(_PG_RUNS), {"n_rois": n_rois})
            conn.execute(
                text(_PG_SITES), {"n_rois": n_rois, "n_sites": n_sites, "per_site": per_site, **region}
            )
            conn.execute(text(_PG_CONTOURS), {"per_site": per_site})
            render_missing(conn)  # each site's /sites Feature, as publication renders it
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        _sqlite_load(engine, n_sites, n_rois, per_site, seed)
        with engine.begin() as conn:
            render_missing(conn)
    return {
        "sites": n_sites,
        "contours": n_sites * per_site,
        "rois": n_rois,
        "load_s": round(time.perf_counter() - t0, 1),
        "reused": False,
    }


def _sqlite_load(engine: Engine, n_sites: int, n_rois: int, per_site: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    lon = rng.uniform(REGION[0], REGION[2], n_sites)
    lat = rng.uniform(REGION[1], REGION[3], n_sites)
    points = shapely.to_wkb(shapely.points(lon, lat))
    days = [dt.date(2019 + m // 12, m % 12 + 1, 1) for m in range(per_site)]
    with engine.begin() as conn:
        conn.execute(
            insert(table(Run)),
            [
                {
                    "run_hash": f"{r:012x}",
                    "roi": f"bench_{r:03d}",
                    "params": "{}",
                    "model_checksums": "{}",
                    "imagery_source": "bench",
                    "code_version": "1",
                    "sequence": 1,
                    "published_at": now,
                }
                for r in range(n_rois)
            ],
        )
        for start in range(0, n_sites, 10_000):
            block = range(start, min(start + 10_000, n_sites))
            conn.execute(
                insert(table(Site)),
                [
                    {
                        "run_hash": f"{g % n_rois:012x}",
                        "roi": f"bench_{g % n_rois:03d}",
                        "site_id": f"b{g}",
                        "name": f"site_{g}",
                        "status": "new",
                        "first_window": days[0],
                        "last_window": days[-1],
                        "n_windows": per_site,
                        "lon": float(lon[g]),
                        "lat": float(lat[g]),
                        "score_latest": 0.9,
                        "patch_latest": 0.9,
                        "score_max": 0.9,
                        "area_km2_latest": 0.02,
                        "address": "",
                        "pixel_scores": "{}",
                        "patch_scores": "{}",
                        "areas_km2": "{}",
                        "site_ids": "[]",
                        "digest": "0" * 64,
                        "geom": points[g],
                    }
                    for g in block
                ],
            )
            rows: list[dict[str, Any]] = []
            for m, day in enumerate(days):
                h = 0.0005 + 0.0001 * (m % 5)
                idx = np.fromiter(block, dtype=np.int64)
                boxes = shapely.multipolygons(
                    shapely.box(lon[idx] - h, lat[idx] - h, lon[idx] + h, lat[idx] + h)[:, None]
                )
                wkbs = shapely.to_wkb(boxes)
                rows.extend(
                    {
                        "run_hash": f"{g % n_rois:012x}",
                        "roi": f"bench_{g % n_rois:03d}",
                        "site_id": f"b{g}",
                        "date": day,
                        "window": day,
                        "area_km2": 0.01,
                        "digest": "0" * 64,
                        "geom": wkbs[k],
                    }
                    for k, g in enumerate(block)
                )
            conn.execute(insert(table(Contour)), rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine)."""
    return [round(v, 2) for v in os.getloadavg()]


def _process_table() -> dict[int, tuple[str, int, float]]:
    """Every process of this machine: pid -> (command name, parent pid, CPU seconds used)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server process with its descendants, and by the processes
    named ``postgres`` (the database server: only this machine's, Linux ``/proc``)."""
    table = _process_table()
    tree, grew = {server_pid}, True
    while grew:
        children = {pid for pid, (_, parent, _) in table.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    server = sum(table[pid][2] for pid in tree if pid in table)
    database = sum(cpu for name, _, cpu in table.values() if name.startswith("postgres"))
    return server, database


def _percentile(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


class _KeepAlive:
    """One keep-alive HTTP/1.1 connection that sends a GET and waits for the whole response
    (parsed by httptools, uvicorn's C parser): the lean client of :func:`_drive`, so that the
    clients take as little of the machine from the server as they can."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> None:
        import asyncio

        import httptools

        loop = asyncio.get_running_loop()
        conn = self

        class Protocol(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                try:
                    conn.parser.feed_data(data)
                except httptools.HttpParserError as err:
                    conn.answer.set_exception(err)

            def connection_lost(self, exc: Exception | None) -> None:
                if not conn.answer.done():
                    conn.answer.set_exception(ConnectionError("the server closed the connection"))

        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self.answer.set_result((0, b""))
        self.transport, _ = await loop.create_connection(Protocol, self.host, self.port)
        self.body: list[bytes] = []

    def on_body(self, body: bytes) -> None:  # httptools callback
        self.body.append(body)

    def on_message_complete(self) -> None:  # httptools callback
        self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))

    async def get(self, target: str) -> tuple[int, bytes]:
        """GET ``target`` (path and query): (status, body)."""
        import asyncio

        self.body = []
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        return await self.answer

    def close(self) -> None:
        self.transport.close()


async def _drive(
    host: str, port: int, boxes: list[tuple[float, float]], clients: int, warmup: int, server_pid: int
) -> dict[str, Any]:
    """``clients`` concurrent keep-alive HTTP/1.1 clients (:class:`_KeepAlive`, one event loop),
    each GETting its share of ``boxes`` in turn and reading every response whole; a round of
    ``warmup`` requests each first (connections, server), not counted. CPU time is counted over
    the measured requests (:func:`cpu_seconds` of ``server_pid``)."""
    import asyncio

    import httptools

    per_client = len(boxes) // clients
    latencies: list[float] = []
    features: list[int] = []
    connections = [_KeepAlive(host, port) for _ in range(clients)]
    for c in connections:
        await c.open()

    async def client(conn: _KeepAlive, mine: list[tuple[float, float]]) -> None:
        for x, y in mine:
            t = time.perf_counter()
            status, body = await conn.get(f"/sites?bbox={x},{x + 1},{y},{y + 1}")
            latencies.append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise SystemExit(f"GET /sites answered {status}: {body[:200]!r}")
            features.append(body.count(b'"type":"Feature"'))

    await asyncio.gather(
        *(client(c, boxes[i * warmup : (i + 1) * warmup]) for i, c in enumerate(connections))
    )
    latencies.clear()
    features.clear()
    server0, database0 = cpu_seconds(server_pid)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(client(c, boxes[i * per_client : (i + 1) * per_client]) for i, c in enumerate(connections))
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server1, database1 = cpu_seconds(server_pid)
    for c in connections:
        c.close()
    n = len(latencies)
    return {
        "requests": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": round(max(latencies), 1),
        "requests_per_s": round(len(latencies) / wall, 1),
        "client": f"keep-alive HTTP/1.1 on asyncio + uvloop, httptools {httptools.__version__}, one process",
        "client_cpu_ms_per_request": round(cpu / n * 1000, 2),
        "server_cpu_ms_per_request": round((server1 - server0) / n * 1000, 2),
        "database_cpu_ms_per_request": round((database1 - database0) / n * 1000, 2),
        "mean_features": round(float(np.mean(features)), 1),
    }


def bench_http(
    url: str, clients: int, requests_per_client: int, workers: int, threads: int, seed: int
) -> dict[str, Any]:
    """Latencies of GET /sites?bbox= (random 1 x 1 degree boxes) from ``clients`` concurrent
    clients against ``plastics serve --workers N --threads T`` (a subprocess on 127.0.0.1)."""
    import asyncio

    import httpx
    import uvloop

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PLASTICS_DATABASE_URL": url, "PLASTICS_STORE": str(Path(tmp) / "store")}
        command = [sys.executable, "-m", "plastics_dagster.cli", "serve", "--port", str(port)]
        command += ["--workers", str(workers), "--threads", str(threads), "--no-access-log"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):
                if server.poll() is not None:
                    raise SystemExit(f"plastics serve exited with status {server.returncode}")
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            time.sleep(2.0 if workers > 1 else 0.0)  # every worker up, not only the first
            rng = np.random.default_rng(seed)
            n = clients * requests_per_client
            boxes = [
                (float(x), float(y))
                for x, y in zip(
                    rng.uniform(REGION[0], REGION[2] - 1, n),
                    rng.uniform(REGION[1], REGION[3] - 1, n),
                    strict=True,
                )
            ]
            before = load_average()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                out = runner.run(_drive("127.0.0.1", port, boxes, clients, warmup=5, server_pid=server.pid))
            after = load_average()
        finally:
            server.terminate()
            server.wait(60)
    return {
        "clients": clients,
        "server_workers": workers,
        "server_threads": threads,
        **out,
        "load_average_before": before,
        "load_average_after": after,
    }


def run_backend(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every section on the database at ``url``."""
    engine = open_database(url)
    backend = "postgis" if engine.dialect.name == "postgresql" else "sqlite"
    out: dict[str, Any] = {"backend": backend, "database": shown_url(url)}
    print(f"[{backend}] publish {args.publish_sites} sites ...", file=sys.stderr, flush=True)
    out["publish"] = bench_publish(engine, args.publish_sites)
    print(
        f"[{backend}] load {args.sites} sites x {args.contours_per_site} contours ...",
        file=sys.stderr,
        flush=True,
    )
    out["load"] = bulk_load(engine, args.sites, args.rois, args.contours_per_site, SEED)
    engine.dispose()
    print(f"[{backend}] {args.clients} clients x {args.requests} requests ...", file=sys.stderr, flush=True)
    out["bbox_http"] = bench_http(url, args.clients, args.requests, args.workers, args.threads, SEED)
    if not args.keep:
        engine = open_database(url)
        drop_bench_rows(engine)
        engine.dispose()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--url",
        default=os.environ.get("PLASTICS_TEST_DATABASE_URL", ""),
        help="PostgreSQL + PostGIS URL (default: $PLASTICS_TEST_DATABASE_URL; none: SQLite only)",
    )
    ap.add_argument("--backends", default="sqlite,postgis", help="comma-separated: sqlite, postgis")
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--rois", type=int, default=100)
    ap.add_argument("--contours-per-site", type=int, default=10)
    ap.add_argument("--publish-sites", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100, help="requests per client")
    ap.add_argument("--workers", type=int, default=1, help="plastics serve --workers")
    ap.add_argument("--threads", type=int, default=4, help="plastics serve --threads")
    ap.add_argument(
        "--keep", action="store_true", help="keep the bench rows (and the SQLite file) for the next run"
    )
    args = ap.parse_args(argv)
    wanted = {b.strip() for b in args.backends.split(",") if b.strip()}
    out: dict[str, Any] = {
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "load_average_start": load_average(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_file = Path(tempfile.gettempdir() if args.keep else tmp) / "plastics-bench-sitedb.sqlite"
        if "sqlite" in wanted:
            out["sqlite"] = run_backend(f"sqlite:///{sqlite_file}", args)
        if "postgis" in wanted and args.url:
            out["postgis"] = run_backend(args.url, args)
    out["load_average_end"] = load_average()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sitedb.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **out}, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
