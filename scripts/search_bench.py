#!/usr/bin/env python3
"""Gallery search benchmark: recall and latency of recognize's face search at scale.

Run (creates .cache/benchvenv with hash-pinned numpy and asyncpg on first use):

    bash scripts/search_bench.sh --sizes 100000,1000000 --index 16:64,32:128 --ef 40,100,200

What it does, for each N in --sizes:
  * starts a private PostgreSQL 15 cluster (initdb in --pg-dir, default .cache/benchpg,
    port --port, unix socket only; as the `postgres` OS user when run as root) with the
    settings in PG_SETTINGS (override with --pg-set name=value), applies migrations/*.sql
    in filename order (the schema has no HNSW index since migration 15 made it opt-in;
    a schema older than that has its index dropped here), and loads synthetic data with
    binary COPY:
      - one big collection of N faces,
      - --small-collections collections of 10 faces each (exact search path),
      - one collection per --exact-sizes entry (exact query latency against size);
    identities have 1-10 faces (uniform); a face is normalize(sqrt(0.6) c + sqrt(0.4) n)
    with c the identity's random unit centre and n fresh random unit noise, so
    same-person cosine is about 0.6 and different-person about 0 +- 0.09 (realised
    figures are printed);
  * for each --index m:ef_construction: builds faces_embedding_hnsw_idx as
    docs/scaling.md tells a FACEREC_SEARCH_IN_MEMORY=false deployment to (timed, size
    reported), prewarms it, and for each --ef x --iterative runs --probes fresh faces of
    random existing identities through crates/store/sql/search_ann.sql verbatim, inside
    a transaction after SET LOCAL hnsw.ef_search / hnsw.iterative_scan, as recognize
    does (plus SET LOCAL plan_cache_mode, see --plan-cache-mode); the whole
    transaction is timed, and the HNSW index scans per query are counted (a plan that
    does not use the index is reported). A warm-up pass, then one client, then
    --clients concurrent clients (one connection each). Ground truth is brute force in
    numpy; recall@k compares the ANN top k with the exact top k of the big collection;
    identification is the probe's own identity at rank 1 (ANN and exact);
  * with --in-memory, once per N: recognize's in-memory search, Store::search_subjects
    itself (crates/store/examples/search_probe.rs, built by search_bench.sh, or taken
    from $FACEREC_BIN_DIR/examples when that is set) on this
    database; the first search loads the index (timed), then one pass per client count;
    recall@1, subject recall@10 (top_k 10) and identification against numpy;
  * once per N, runs crates/store/sql/search_exact.sql (bare statement) on the small
    collections and on the --exact-sizes collections: recall against numpy and latency.
Results go to --out-dir (default .cache/search_bench)/results-<UTC timestamp>.json and a
table to stdout.
The cluster is stopped at the end, on errors and on Ctrl-C. The load average
(/proc/loadavg) is recorded with every pass: other work on the machine skews latency.
"""
import argparse
import asyncio
import datetime
import hashlib
import io
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid

import asyncpg
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Where the built binaries are (scripts/smoke_commands.sh points it at target/debug).
BIN = ROOT / os.environ.get("FACEREC_BIN_DIR", "target/release")
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")
DIM = 128
EMBEDDER = "sface_2021dec"
DETECTOR = "yunet_2023mar"
LIMIT = 20  # recognize fetches 4 x top_k faces, at least 20
TOP_K = 10  # subjects asked of the in-memory search (recognize's default is 5)
SAME_COS = 0.6  # designed same-identity cosine
BIG = "big"
INDEX = "faces_embedding_hnsw_idx"

# Settings of the private cluster. The first group is what a production install
# on a machine like this one (2 cores, 24 GiB) should also use; the second only
# makes loading the synthetic data fast and the timings quiet, and is NOT for production.
PG_SETTINGS = {
    # Index and heap of the big collection stay in PostgreSQL's own cache
    # (1M faces: ~1 GB heap + 0.5-1 GB index).
    "shared_buffers": "6GB",
    "effective_cache_size": "16GB",
    # Room to build the HNSW graph in memory (PostgreSQL logs "hnsw graph no longer
    # fits into maintenance_work_mem" otherwise, and the build gets many times slower).
    "maintenance_work_mem": "4GB",
    # ... but autovacuum workers would take as much each without this.
    "autovacuum_work_mem": "256MB",
    # Leader + 1 worker build the index on 2 cores.
    "max_parallel_maintenance_workers": "1",
    # Searches are short LIMIT queries: no parallel plans, no JIT compilation.
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
    "work_mem": "16MB",
    "random_page_cost": "1.1",
    "huge_pages": "try",
    "max_connections": "50",
    # --- benchmark only ---
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "20GB",
    "checkpoint_timeout": "1h",
    "autovacuum": "off",  # the loader runs VACUUM ANALYZE itself
}


def loadavg():
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


# ---------------------------------------------------------------- the cluster


class Cluster:
    """A throw-away PostgreSQL 15 cluster in `base`, reachable on a unix socket there."""

    def __init__(self, base, port, settings):
        self.base = base
        self.data = base / "data"
        self.port = port
        self.settings = settings
        self.running = False

    def _run(self, *cmd, check=True):
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ("runuser", "-u", "postgres", "--") + cmd
        subprocess.run(cmd, check=check, stdout=subprocess.DEVNULL)

    def start(self):
        if (self.data / "postmaster.pid").exists():  # left over by a killed run
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate",
                      check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-locale")
        conf = {**self.settings, "port": str(self.port), "listen_addresses": "''",
                "unix_socket_directories": f"'{self.base}'"}
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# scripts/search_bench.py\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
                  "-w", "start")
        self.running = True

    def stop(self):
        if self.running:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    async def connect(self, vector=True):
        conn = await asyncpg.connect(host=str(self.base), port=self.port, user="postgres",
                                     database="postgres")
        if vector:
            await vector_codec(conn)
        return conn


async def vector_codec(conn):
    """Vectors travel in pgvector's binary form (see vec_bin), as sqlx sends them."""
    await conn.set_type_codec("vector", schema="public", format="binary",
                              encoder=lambda b: b, decoder=lambda b: b)


async def apply_migrations(conn):
    """Applies migrations/*.sql and records them as sqlx does (version, description,
    SHA-384 checksum), so facerec's own binaries accept the loaded database
    (scripts/recognize_latency.py runs them against it)."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL, "
        "installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL, "
        "execution_time bigint NOT NULL)")
    for m in sorted((ROOT / "migrations").glob("*.sql")):
        sql = m.read_text()
        await conn.execute(sql)
        version, description = m.stem.split("_", 1)
        await conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
            "VALUES ($1, $2, true, $3, 0)",
            int(version), description.replace("_", " "), hashlib.sha384(sql.encode()).digest())


def vec_bin(v):
    return struct.pack(f">hh{DIM}f", DIM, 0, *v.tolist())


# ---------------------------------------------------------------- synthetic data


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def identity_sizes(rng, n_faces):
    """Faces per identity, uniform 1-10, summing to n_faces (the last one cut short)."""
    sizes = rng.integers(1, 11, size=n_faces // 5 + 10)
    while sizes.sum() < n_faces:
        sizes = np.concatenate([sizes, rng.integers(1, 11, size=n_faces // 5 + 10)])
    cut = int(np.searchsorted(np.cumsum(sizes), n_faces))
    sizes = sizes[:cut + 1].copy()
    sizes[-1] -= sizes.sum() - n_faces
    return sizes


def faces_of(rng, centres, ident):
    """One fresh face per entry of `ident` (indices into `centres`)."""
    out = np.empty((len(ident), DIM), np.float32)
    for s in range(0, len(ident), 200_000):
        idx = ident[s:s + 200_000]
        noise = unit(rng.standard_normal((len(idx), DIM), dtype=np.float32))
        out[s:s + len(idx)] = unit(np.sqrt(SAME_COS) * centres[idx] + np.sqrt(1 - SAME_COS) * noise)
    return out


class Gallery:
    """Every face of the table, in load order, and the collections they form."""

    def __init__(self, rng, collections):
        """collections: list of (name, list of identity sizes)."""
        sizes = np.concatenate([s for _, s in collections])
        self.centres = unit(rng.standard_normal((len(sizes), DIM), dtype=np.float32))
        self.ident = np.repeat(np.arange(len(sizes)), sizes)  # face -> global identity
        self.vectors = faces_of(rng, self.centres, self.ident)
        self.ranges = {}  # collection -> (first face, end face, first identity, end identity)
        face = ident = 0
        for name, s in collections:
            self.ranges[name] = (face, face + int(s.sum()), ident, ident + len(s))
            face += int(s.sum())
            ident += len(s)
        self.coll_of_ident = np.empty(len(sizes), object)
        for name, (_, _, i0, i1) in self.ranges.items():
            self.coll_of_ident[i0:i1] = name

    def stats(self, rng, n=20_000):
        """Realised same- and different-identity cosines (mean, std)."""
        # Same identity: the first and last face of identities with 2+ faces.
        first = np.searchsorted(self.ident, np.arange(len(self.centres)))
        last = np.searchsorted(self.ident, np.arange(len(self.centres)), side="right") - 1
        multi = np.flatnonzero(last > first)[:n]
        same = np.einsum("ij,ij->i", self.vectors[first[multi]], self.vectors[last[multi]])
        a, b = rng.integers(0, len(self.vectors), (2, n))
        keep = self.ident[a] != self.ident[b]
        diff = np.einsum("ij,ij->i", self.vectors[a[keep]], self.vectors[b[keep]])
        return {"same_mean": float(same.mean()), "same_std": float(same.std()),
                "diff_mean": float(diff.mean()), "diff_std": float(diff.std()),
                "diff_max_of_pairs": float(diff.max())}


def face_uuid(i):
    return uuid.UUID(int=(0xFACE << 112) | int(i))


def copy_rows(dtype, n, fill):
    """Binary COPY stream: header, n tuples of `dtype` filled by fill(array), trailer."""
    rows = np.zeros(n, dtype)
    fill(rows)
    return io.BytesIO(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + rows.tobytes()
                      + struct.pack(">h", -1))


def uuid_fields(name):
    return [(f"l_{name}", ">i4"), (f"{name}_hi", ">u8"), (f"{name}_lo", ">u8")]


def text_field(name, width):
    return [(f"l_{name}", ">i4"), (name, f"S{width}")]


async def load(conn, gallery):
    """Subjects and faces by binary COPY: one subject per identity."""
    if await conn.fetchval("SELECT to_regclass('public.collections') IS NOT NULL"):
        # Newer schemas name collections in their own table.
        await conn.execute("INSERT INTO collections (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                           list(gallery.ranges))
    # Collections are loaded in groups whose names have one length (fixed-width fields).
    groups = {}
    for name in gallery.ranges:
        groups.setdefault(len(name.encode()), []).append(name)
    bbox = b'\x01{"x": 0, "y": 0, "width": 112, "height": 112}'
    for width, names in groups.items():
        i_idx = np.concatenate([np.arange(*gallery.ranges[c][2:]) for c in names])
        f_idx = np.concatenate([np.arange(*gallery.ranges[c][:2]) for c in names])
        sub_dtype = np.dtype([("nf", ">i2")] + uuid_fields("id") + text_field("coll", width)
                             + text_field("name", 10))

        def fill_subjects(r):
            r["nf"] = 3
            r["l_id"], r["id_hi"], r["id_lo"] = 16, 0x5B1E << 48, i_idx
            r["l_coll"], r["coll"] = width, gallery.coll_of_ident[i_idx].astype(f"S{width}")
            r["l_name"], r["name"] = 10, np.char.mod("p%09d", i_idx).astype("S10")
        await conn.copy_to_table("subjects", columns=["id", "collection", "name"], format="binary",
                                 source=copy_rows(sub_dtype, len(i_idx), fill_subjects))
        face_dtype = np.dtype(
            [("nf", ">i2")] + uuid_fields("id") + uuid_fields("sid") + text_field("coll", width)
            + [("l_emb", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("emb", ">f4", (DIM,))]
            + text_field("bbox", len(bbox)) + [("l_score", ">i4"), ("score", ">f4")]
            + text_field("det", len(DETECTOR)) + text_field("embd", len(EMBEDDER)))
        for s in range(0, len(f_idx), 100_000):
            part = f_idx[s:s + 100_000]

            def fill_faces(r):
                r["nf"] = 8
                r["l_id"], r["id_hi"], r["id_lo"] = 16, 0xFACE << 48, part
                r["l_sid"], r["sid_hi"], r["sid_lo"] = 16, 0x5B1E << 48, gallery.ident[part]
                r["l_coll"] = width
                r["coll"] = gallery.coll_of_ident[gallery.ident[part]].astype(f"S{width}")
                r["l_emb"], r["dim"], r["emb"] = 4 + 4 * DIM, DIM, gallery.vectors[part]
                r["l_bbox"], r["bbox"] = len(bbox), bbox
                r["l_score"], r["score"] = 4, 0.9
                r["l_det"], r["det"] = len(DETECTOR), DETECTOR.encode()
                r["l_embd"], r["embd"] = len(EMBEDDER), EMBEDDER.encode()
            await conn.copy_to_table(
                "faces", format="binary", source=copy_rows(face_dtype, len(part), fill_faces),
                columns=["id", "subject_id", "collection", "embedding", "bbox", "detection_score",
                         "detector", "embedder"])


# ---------------------------------------------------------------- probes and ground truth


def exact_topk(vectors, probes, k):
    """Indices (into vectors) of the k most cosine-similar rows per probe, best first."""
    best_s = np.full((len(probes), 0), -np.inf, np.float32)
    best_i = np.zeros((len(probes), 0), np.int64)
    for s in range(0, len(vectors), 65_536):
        sims = probes @ vectors[s:s + 65_536].T
        kk = min(2 * k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        keep = np.argsort(-best_s, axis=1)[:, :2 * k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    # Order the candidates in float64, so that float32 rounding cannot swap near ties.
    s64 = np.einsum("pkd,pd->pk", vectors[best_i].astype(np.float64), probes.astype(np.float64))
    order = np.argsort(-s64, axis=1)[:, :k]
    return np.take_along_axis(best_i, order, 1)


class Probes:
    """Fresh faces of random identities of one collection, with their exact answers."""

    def __init__(self, rng, gallery, collections, n):
        per = rng.integers(0, len(collections), n)
        self.colls = [collections[i] for i in per]
        self.ident = np.array([rng.integers(*gallery.ranges[c][2:]) for c in self.colls])
        self.vectors = faces_of(rng, gallery.centres, self.ident)
        self.bins = [vec_bin(v) for v in self.vectors]
        self.truth = []  # per probe: global face indices of the exact top LIMIT, best first
        for c in sorted(set(self.colls)):
            sel = [i for i, pc in enumerate(self.colls) if pc == c]
            f0, f1 = gallery.ranges[c][:2]
            top = exact_topk(gallery.vectors[f0:f1], self.vectors[sel], min(LIMIT, f1 - f0)) + f0
            self.truth.extend(zip(sel, top))
        self.truth = [t for _, t in sorted(self.truth, key=lambda x: x[0])]


def face_index(record):
    return record["face_id"].int & ((1 << 64) - 1)


def score(probes, gallery, answers):
    """recall@1, recall@10 against exact search, identification rates (ANN, exact)."""
    r1 = r10 = id_ann = id_exact = 0.0
    for truth, ans, ident, vec in zip(probes.truth, answers, probes.ident, probes.vectors):
        got = [face_index(r) for r in ans]
        k = min(10, len(truth))
        # A different face with the same similarity (to float32 precision) is a hit too.
        r1 += bool(got) and (got[0] == truth[0] or
                             abs(float(gallery.vectors[got[0]] @ vec) - float(gallery.vectors[truth[0]] @ vec)) < 1e-6)
        r10 += len(set(got[:k]) & set(truth[:k].tolist())) / k
        id_ann += bool(got) and gallery.ident[got[0]] == ident
        id_exact += gallery.ident[truth[0]] == ident
    n = len(answers)
    return {"recall@1": r1 / n, "recall@10": r10 / n, "ident_ann": id_ann / n, "ident_exact": id_exact / n}


# ---------------------------------------------------------------- timed searches


async def ann_search(conn, stmt, vec, coll, ef, mode, plan_cache_mode):
    """recognize's HNSW search: one transaction, timed whole."""
    t0 = time.perf_counter()
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        await conn.execute(f"SET LOCAL hnsw.iterative_scan = {mode}")
        if plan_cache_mode != "auto":
            await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        rows = await stmt.fetch(vec, coll, EMBEDDER, LIMIT)
    return time.perf_counter() - t0, rows


async def exact_search(conn, stmt, vec, coll):
    t0 = time.perf_counter()
    rows = await stmt.fetch(vec, coll, EMBEDDER, LIMIT)
    return time.perf_counter() - t0, rows


async def run_pass(conns, sql, probes, search, *args):
    """Every probe once, spread over len(conns) clients; (latencies in ms, answers)."""
    lat = [0.0] * len(probes.bins)
    answers = [None] * len(probes.bins)
    todo = iter(range(len(probes.bins)))

    async def client(conn):
        stmt = await conn.prepare(sql)
        for i in todo:
            lat[i], answers[i] = await search(conn, stmt, probes.bins[i], probes.colls[i], *args)
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    wall = time.perf_counter() - t0
    return np.array(lat) * 1000, answers, wall


def lat_stats(lat, wall):
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_ms": float(lat.mean()), "qps": len(lat) / wall}


async def index_scans(admin):
    """Scans of the HNSW index so far (the statistics lag by up to a second)."""
    await asyncio.sleep(1.2)
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return await admin.fetchval("SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes "
                                "WHERE indexrelname = $1", INDEX)


async def measure(cluster, admin, sql, probes, gallery, search, args, clients, verify_plan):
    """Warm-up, one client, `clients` clients; recall from the one-client pass."""
    conns = [await cluster.connect() for _ in range(max(clients))]
    try:
        out = {"load_before": loadavg()}
        await run_pass(conns[:1], sql, probes, search, *args)  # warm-up
        before = await index_scans(admin)
        for c in clients:
            lat, answers, wall = await run_pass(conns[:c], sql, probes, search, *args)
            out[f"clients_{c}"] = lat_stats(lat, wall)
            if c == clients[0]:
                out.update(score(probes, gallery, answers))
                scans = await index_scans(admin) - before
                out["hnsw_scans_per_query"] = scans / len(probes.bins)
                if (scans > len(probes.bins) / 2) != verify_plan:
                    log(f"WARNING: {scans} HNSW index scans for {len(probes.bins)} queries "
                        f"(expected {'one each' if verify_plan else 'none'})")
        out["load_after"] = loadavg()
        return out
    finally:
        for c in conns:
            await c.close()


# ---------------------------------------------------------------- one size


def p99_crossing(points, limit_ms=10.0):
    """Collection size where exact p99 first reaches limit_ms (linear between points)."""
    for (n0, p0), (n1, p1) in zip(points, points[1:]):
        if p0 < limit_ms <= p1:
            return round(n0 + (limit_ms - p0) * (n1 - n0) / (p1 - p0))
    return None if points[-1][1] < limit_ms else points[0][0]


async def bench_size(a, n_big, rng, results):
    small_names = [f"small-{i:05d}" for i in range(a.small_collections)]
    sized = {n: f"size-{n}" for n in a.exact_sizes}
    collections = [(BIG, identity_sizes(rng, n_big))]
    collections += [(s, identity_sizes(rng, 10)) for s in small_names]
    collections += [(name, identity_sizes(rng, n)) for n, name in sized.items()]
    log(f"N={n_big}: generating {sum(int(s.sum()) for _, s in collections)} faces")
    gallery = Gallery(rng, collections)
    res = {"n": n_big, "rows": len(gallery.vectors), "identities_big": len(collections[0][1]),
           "cosines": gallery.stats(rng), "indexes": []}
    log(f"realised cosines: {json.dumps({k: round(v, 4) for k, v in res['cosines'].items()})}")
    big_probes = Probes(rng, gallery, [BIG], a.probes)
    ann_sql = (ROOT / "crates/store/sql/search_ann.sql").read_text()
    exact_sql = (ROOT / "crates/store/sql/search_exact.sql").read_text()

    cluster = Cluster(a.pg_dir, a.port, {**PG_SETTINGS, **dict(a.pg_set)})
    try:
        cluster.start()
        admin = await cluster.connect(vector=False)
        await apply_migrations(admin)
        await vector_codec(admin)
        # Migration 15 made the HNSW index opt-in (dropped): loading runs without
        # it, and each --index builds it below. IF EXISTS: older schemas had it.
        await admin.execute(f"DROP INDEX IF EXISTS {INDEX}")
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        t0 = time.perf_counter()
        await load(admin, gallery)
        await admin.execute("VACUUM ANALYZE subjects, faces")
        res["load_s"] = time.perf_counter() - t0
        res["table_bytes"] = await admin.fetchval("SELECT pg_table_size('faces')")
        res["settings"] = {r["name"]: r["value"] for r in await admin.fetch(
            "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1)",
            list(cluster.settings))}
        log(f"loaded {res['rows']} rows in {res['load_s']:.0f} s, heap {res['table_bytes'] / 2**20:.0f} MiB")

        # Sanity: the exact SQL agrees with numpy on the big collection.
        few = min(10, len(big_probes.bins))
        stmt = await admin.prepare(exact_sql)
        agree = 0
        for i in range(few):
            rows = await stmt.fetch(big_probes.bins[i], BIG, EMBEDDER, LIMIT)
            agree += [face_index(r) for r in rows[:10]] == big_probes.truth[i][:10].tolist()
        res["exact_sql_agrees_with_numpy"] = f"{agree}/{few}"
        log(f"search_exact.sql top-10 == numpy top-10 for {agree}/{few} probes of {BIG}")

        if a.in_memory:
            res["in_memory"] = r = measure_in_memory(a, cluster, big_probes, gallery)
            print_memory_row(n_big, r, a.clients)

        for m, efc in a.index:
            idx = {"m": m, "ef_construction": efc, "load_before": loadavg(), "runs": []}
            log(f"building HNSW m={m} ef_construction={efc} ...")
            await admin.execute(f"DROP INDEX IF EXISTS {INDEX}")
            t0 = time.perf_counter()
            await admin.execute(f"CREATE INDEX {INDEX} ON faces USING hnsw (embedding vector_cosine_ops) "
                                f"WITH (m = {m}, ef_construction = {efc})")
            idx["build_s"] = time.perf_counter() - t0
            idx["load_after"] = loadavg()
            idx["index_bytes"] = await admin.fetchval("SELECT pg_relation_size($1::regclass)", INDEX)
            await admin.execute(f"SELECT pg_prewarm('{INDEX}'), pg_prewarm('faces')")
            log(f"built in {idx['build_s']:.0f} s, {idx['index_bytes'] / 2**20:.0f} MiB")
            res["indexes"].append(idx)
            for ef in a.ef:
                for mode in a.iterative:
                    r = await measure(cluster, admin, ann_sql, big_probes, gallery, ann_search,
                                      (ef, mode, a.plan_cache_mode), a.clients, True)
                    r.update(ef_search=ef, iterative_scan=mode, plan_cache_mode=a.plan_cache_mode)
                    idx["runs"].append(r)
                    print_ann_row(n_big, idx, r, a.clients)

        res["exact"] = []
        targets = ([("10 x small", small_names)] if small_names else []) + \
            [(str(n), [name]) for n, name in sized.items()]
        for label, colls in targets:
            probes = Probes(rng, gallery, colls, a.exact_probes)
            r = await measure(cluster, admin, exact_sql, probes, gallery, exact_search, (),
                              a.clients, False)
            r["collection_faces"] = label
            res["exact"].append(r)
            print_exact_row(r, a.clients)
        points = [(int(r["collection_faces"]), r[f"clients_{a.clients[0]}"]["p99_ms"])
                  for r in res["exact"] if r["collection_faces"].isdigit()]
        if points:
            res["exact_p99_10ms_at_faces"] = p99_crossing(points)
            at = res["exact_p99_10ms_at_faces"]
            log(f"exact p99 reaches 10 ms at about {at} faces" if at else
                "exact p99 stays under 10 ms at every size measured")
        await admin.close()
    finally:
        results["sizes"].append(res)
        cluster.stop()


def measure_in_memory(a, cluster, probes, gallery):
    """recognize's in-memory search (Store::search_subjects, default settings) through
    the search_probe example: the first search loads the index (timed), then a warm-up
    pass, then one pass per client count. Scored on the first pass."""
    path = a.out_dir / "probes.f32"
    path.write_bytes(probes.vectors.astype("<f4").tobytes())
    url = f"postgres://postgres@localhost/postgres?host={cluster.base}&port={cluster.port}"
    out = {"load_before": loadavg()}
    cmd = [str(a.probe_bin), url, BIG, str(path), str(DIM), str(TOP_K), ",".join(map(str, a.clients))]
    ran = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
    out["load_after"] = loadavg()
    out["first_search_ms"] = ran["first_search_ms"]
    out["rss_mib"] = (ran["rss_kib"] or 0) / 1024
    # Exact top identities per probe (the faces of the 10 best distinct identities lie
    # among the top 10 x 10 faces: an identity has at most 10).
    f0, f1 = gallery.ranges[BIG][:2]
    top = exact_topk(gallery.vectors[f0:f1], probes.vectors, 100) + f0
    for p in ran["passes"]:
        lat = np.array([x["ms"] for x in p["answers"]])
        out[f"clients_{p['clients']}"] = lat_stats(lat, p["wall_s"])
    answers = ran["passes"][0]["answers"]
    r1 = r10 = id_ann = id_exact = 0.0
    for truth, faces, ans, ident, vec in zip(probes.truth, top, answers, probes.ident, probes.vectors):
        hits = ans["hits"]
        got = uuid.UUID(hits[0]["face_id"]).int & ((1 << 64) - 1) if hits else None
        r1 += got is not None and (got == truth[0] or abs(float(gallery.vectors[got] @ vec)
                                                         - float(gallery.vectors[truth[0]] @ vec)) < 1e-6)
        want = list(dict.fromkeys(gallery.ident[faces].tolist()))[:TOP_K]
        r10 += len(set(want) & {int(h["subject"][1:]) for h in hits}) / len(want)
        id_ann += got is not None and gallery.ident[got] == ident
        id_exact += gallery.ident[truth[0]] == ident
    n = len(answers)
    out.update({"recall@1": r1 / n, "subject_recall@10": r10 / n, "ident_ann": id_ann / n,
                "ident_exact": id_exact / n})
    return out


def print_memory_row(n, r, clients):
    cols = [f"{n:>8}", "in-memory", f"load {r['first_search_ms'] / 1000:>5.1f} s", f"rss {r['rss_mib']:>5.0f} MiB",
            f"r@1 {r['recall@1']:.3f}", f"subj r@10 {r['subject_recall@10']:.3f}",
            f"id {r['ident_ann']:.3f}/{r['ident_exact']:.3f}"]
    cols += [f"{c}cl p50 {r[f'clients_{c}']['p50_ms']:.2f} p99 {r[f'clients_{c}']['p99_ms']:.2f}"
             f" ({r[f'clients_{c}']['qps']:.0f}/s)" for c in clients]
    cols += [f"load {r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}"]
    print("  ".join(cols), flush=True)


def print_ann_row(n, idx, r, clients):
    cols = [f"{n:>8}", f"{idx['m']:>3}", f"{idx['ef_construction']:>4}", f"{idx['build_s']:>7.0f}",
            f"{idx['index_bytes'] / 2**20:>7.0f}", f"{r['ef_search']:>5}", f"{r['iterative_scan']:>14}",
            f"{r['recall@1']:>6.3f}", f"{r['recall@10']:>6.3f}", f"{r['ident_ann']:>6.3f}",
            f"{r['ident_exact']:>6.3f}"]
    cols += [f"{r[f'clients_{c}']['p50_ms']:>6.2f} {r[f'clients_{c}']['p99_ms']:>6.2f}" for c in clients]
    cols += [f"{r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}"]
    print(" ".join(cols), flush=True)


def print_exact_row(r, clients):
    cols = [f"exact {r['collection_faces']:>10}", f"r@1 {r['recall@1']:.3f}", f"r@10 {r['recall@10']:.3f}"]
    cols += [f"{c}cl p50 {r[f'clients_{c}']['p50_ms']:.2f} p99 {r[f'clients_{c}']['p99_ms']:.2f}" for c in clients]
    cols += [f"load {r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}"]
    print("  ".join(cols), flush=True)


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int_list, default=[100_000], help="faces of the big collection, e.g. 100000,1000000")
    p.add_argument("--index", default="16:64",
                   help="HNSW m:ef_construction list, e.g. 16:64,32:128; empty: exact path only")
    p.add_argument("--ef", type=int_list, default=[40, 100, 200], help="hnsw.ef_search values")
    p.add_argument("--iterative", default="strict_order,relaxed_order", help="hnsw.iterative_scan modes")
    p.add_argument("--plan-cache-mode", default="force_custom_plan", choices=["auto", "force_custom_plan"],
                   help="SET LOCAL plan_cache_mode in the ANN transaction. With auto (PostgreSQL's default) "
                        "a statement prepared once per connection, as sqlx does, gets a generic plan after 5 "
                        "runs; when most collections are small that plan reads the collection through a "
                        "b-tree and sorts it (exact and slow on a big collection), not through HNSW")
    p.add_argument("--probes", type=int, default=1000, help="probes of the big collection")
    p.add_argument("--exact-probes", type=int, default=300, help="probes per exact-path measurement")
    p.add_argument("--clients", type=int_list, default=[1, 8], help="client counts; recall from the first")
    p.add_argument("--small-collections", type=int, default=10_000, help="collections of 10 faces")
    p.add_argument("--exact-sizes", type=int_list, default=[1000, 10_000, 20_000, 50_000],
                   help="one collection of each size, for exact query latency against size")
    p.add_argument("--pg-set", action="append", default=[], type=lambda s: tuple(s.split("=", 1)),
                   help="override a PostgreSQL setting, name=value (repeatable)")
    p.add_argument("--in-memory", action="store_true",
                   help="also measure recognize's in-memory search (Store::search_subjects through "
                        "the search_probe example, built by search_bench.sh)")
    p.add_argument("--probe-bin", type=pathlib.Path, default=BIN / "examples/search_probe",
                   help="the search_probe example (default: $FACEREC_BIN_DIR/examples, else target/release/examples)")
    p.add_argument("--port", type=int, default=5499)
    p.add_argument("--pg-dir", type=lambda d: pathlib.Path(d).resolve(), default=ROOT / ".cache/benchpg",
                   help="the private cluster's folder, wiped at start (a second run beside the first "
                        "needs its own folder and --port)")
    p.add_argument("--out-dir", type=lambda d: pathlib.Path(d).resolve(), default=ROOT / ".cache/search_bench",
                   help="where results-<time>.json goes")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    a.index = [tuple(int(x) for x in pair.split(":")) for pair in a.index.split(",") if pair]
    a.iterative = a.iterative.split(",")

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)  # stop the cluster on kill too
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = a.out_dir / f"results-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"started": stamp, "argv": sys.argv[1:], "nproc": os.cpu_count(), "limit": LIMIT,
               "sizes": []}
    print("       N   m  efc build_s idx_MiB    ef      iterative   r@1   r@10 idAnn idExact "
          + " ".join(f"{c}cl_p50 p99".rjust(13) for c in a.clients) + " load1 before/after", flush=True)
    try:
        for n in a.sizes:
            asyncio.run(bench_size(a, n, np.random.default_rng(a.seed), results))
    finally:
        out.write_text(json.dumps(results, indent=1))
        log(f"results: {out}")


if __name__ == "__main__":
    main()
