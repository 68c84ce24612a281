"""Bench data: many users and generations on PostgreSQL, written with COPY, seeded.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/easel_bench \\
        .venv/bin/python bench/datagen.py --users 1000 --generations 1000000 --heavy 100000

One heavy user (heavy@bench.easel) owns --heavy generations; the rest are spread over the other
users. Statuses, models, image counts and timestamps follow a fixed, seeded mix, so two runs
with the same arguments write the same rows. Output images point at a handful of real objects
(rendered once by the local renderer and stored in the configured storage — local disk or S3)
so gallery pages render real thumbnails.

It refuses to run on a database whose name does not contain "bench" or start with "test_":
it empties the generation tables first.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("EASEL_ALLOW_DEV_SECRET", "1")

from bench.datagen_assets import BENCH_MODELS, WORDS, ensure_models, store_objects
from bench.pg_copy import Copier

HEAVY_EMAIL = "heavy@bench.easel"
BENCH_PASSWORD = "bench-Password-123"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=365 * 2)

# The share of each of BENCH_MODELS (in its order) among the generations.
MODEL_WEIGHTS = [0.35, 0.25, 0.2, 0.1, 0.05, 0.05]
STATUS_MIX = [("completed", 0.90), ("failed", 0.07), ("canceled", 0.03)]
IMAGES_MIX = [(1, 0.7), (2, 0.15), (4, 0.15)]


def setup_django() -> None:
    import django

    django.setup()


def check_database() -> str:
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql":
        raise SystemExit("datagen needs PostgreSQL (DATABASE_URL=postgres://…)")
    if "bench" not in name and not name.startswith("test_"):
        raise SystemExit(f"refusing to empty {name!r}: use a database named *bench* (or test_*)")
    return name


def _pick(rng: random.Random, mix):
    r = rng.random()
    for value, weight in mix:
        r -= weight
        if r <= 0:
            return value
    return mix[-1][0]


def generate(users: int, generations: int, heavy: int, seed: int = 8, log=print) -> dict:
    """Empty the generation tables and write the data set. Returns a summary."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction

    from accounts.models import User
    from generator.models import Generation, OutputImage

    name = check_database()
    rng = random.Random(seed)
    t0 = time.monotonic()
    model_ids = ensure_models()
    model_list = list(model_ids.values())
    objects = store_objects(seed)
    password = make_password(BENCH_PASSWORD)
    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f'TRUNCATE "{OutputImage._meta.db_table}", "{Generation._meta.db_table}" '
            "RESTART IDENTITY CASCADE"
        )
        cur.execute("DELETE FROM accounts_user WHERE email LIKE %s", ["%@bench.easel"])
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM accounts_user")
        first_user = cur.fetchone()[0] + 1
        # Users: one heavy user first, then the rest.
        copier = Copier(
            cur,
            User,
            [
                "id",
                "password",
                "username",
                "email",
                "public_id",
                "priority",
                "date_joined",
                "is_active",
            ],
        )
        user_ids = []
        for n in range(users):
            uid = first_user + n
            email = HEAVY_EMAIL if n == 0 else f"user{n}@bench.easel"
            copier.write(
                {
                    "id": uid,
                    "password": password,
                    "username": email,
                    "email": email,
                    "public_id": f"u_bench{seed:02d}{n:06d}",
                    "priority": ("medium", "high", "low")[n % 3],
                    "date_joined": EPOCH,
                    "is_active": True,
                }
            )
            user_ids.append(uid)
        copier.close()
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), "
            "(SELECT MAX(id) FROM accounts_user))"
        )
        log(f"users: {users} in {time.monotonic() - t0:.1f}s")

        # Per-user counts: the heavy user's, then the others' spread at random.
        counts = [0] * users
        counts[0] = min(heavy, generations) if users > 1 else generations
        rest = generations - counts[0]
        others = users - 1
        if others:
            for i in range(others):
                counts[1 + i] = rest // others
            for _ in range(rest - (rest // others) * others):
                counts[1 + rng.randrange(others)] += 1

        gen_cols = [
            "id",
            "public_id",
            "user_id",
            "model_id",
            "provider",
            "prompt",
            "options",
            "seed",
            "num_images",
            "status",
            "error",
            "progress",
            "tag_sent",
            "priority",
            "attempts",
            "dispatches",
            "created_at",
            "dispatched_at",
            "started_at",
            "submitted_at",
            "finished_at",
            "updated_at",
        ]
        gcopy = Copier(cur, Generation, gen_cols)
        images: list[tuple] = []
        provider_of = {pk: BENCH_MODELS[i][2] for i, pk in enumerate(model_list)}
        gid = 0
        span = SPAN.total_seconds()
        for n, uid in enumerate(user_ids):
            count = counts[n]
            if not count:
                continue
            # Newest-first history ending a little before now; the two newest may be active.
            step = span / count
            start = now - SPAN
            for k in range(count):
                gid += 1
                created = start + timedelta(seconds=k * step + rng.random() * step * 0.5)
                status = _pick(rng, STATUS_MIX)
                if k >= count - 2 and rng.random() < 0.3:
                    status = rng.choice(("queued", "running"))
                model_pk = rng.choices(model_list, MODEL_WEIGHTS)[0]
                num = _pick(rng, IMAGES_MIX)
                wait = timedelta(seconds=rng.uniform(0.05, 2))
                took = timedelta(seconds=rng.uniform(2, 30))
                final = status in ("completed", "failed", "canceled")
                gcopy.write(
                    {
                        "id": gid,
                        "public_id": f"b{seed:02d}{gid:011d}",
                        "user_id": uid,
                        "model_id": model_pk,
                        "provider": provider_of[model_pk],
                        "prompt": WORDS[rng.randrange(len(WORDS))],
                        "options": {"size": "512x512"},
                        "seed": rng.randrange(2**32),
                        "num_images": num,
                        "status": status,
                        "error": {
                            "failed": "The provider rejected the prompt (content policy).",
                            "canceled": "Canceled.",
                        }.get(status, ""),
                        "progress": 1.0 if status == "completed" else None,
                        "tag_sent": f"u_bench{seed:02d}{n:06d}",
                        "priority": 5,
                        "attempts": 1,
                        "dispatches": 1,
                        "created_at": created,
                        "dispatched_at": created,
                        "started_at": created + wait if status != "queued" else None,
                        "submitted_at": created + wait if status != "queued" else None,
                        "finished_at": created + wait + took if final else None,
                        "updated_at": created + wait + took,
                    }
                )
                if status == "completed":
                    for index in range(num):
                        images.append((gid, index, created + wait + took))
            if n == 0 or (n % 100 == 0):
                log(f"  user {n}: {gid} generations so far ({time.monotonic() - t0:.1f}s)")
        gcopy.close()
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('generator_generation', 'id'), %s)", [max(gid, 1)]
        )
        log(f"generations: {gid} in {time.monotonic() - t0:.1f}s")

        icopy = Copier(
            cur,
            OutputImage,
            [
                "generation_id",
                "index",
                "file",
                "thumbnail",
                "width",
                "height",
                "bytes",
                "content_type",
                "thumbnail_bytes",
                "sha256",
                "created_at",
            ],
        )
        for gen_pk, index, at in images:
            obj = objects[(gen_pk + index) % len(objects)]
            icopy.write(
                {
                    "generation_id": gen_pk,
                    "index": index,
                    "file": obj["file"],
                    "thumbnail": obj["thumbnail"],
                    "width": 512,
                    "height": 512,
                    "bytes": obj["bytes"],
                    "content_type": "image/png",
                    "thumbnail_bytes": obj["thumbnail_bytes"],
                    "sha256": obj["sha256"],
                    "created_at": at,
                }
            )
        icopy.close()
        log(f"images: {len(images)} in {time.monotonic() - t0:.1f}s")
    with connection.cursor() as cur:
        # Steady state, as autovacuum leaves a live database: statistics and visibility map.
        cur.execute("VACUUM ANALYZE accounts_user")
        cur.execute(f'VACUUM ANALYZE "{Generation._meta.db_table}"')
        cur.execute(f'VACUUM ANALYZE "{OutputImage._meta.db_table}"')
    seconds = time.monotonic() - t0
    log(f"done in {seconds:.1f}s")
    return {
        "database": name,
        "users": users,
        "generations": gid,
        "images": len(images),
        "heavy": counts[0],
        "seconds": round(seconds, 1),
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=1_000_000)
    parser.add_argument("--heavy", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    setup_django()
    summary = generate(args.users, args.generations, args.heavy, args.seed)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
