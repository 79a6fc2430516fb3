"""Data tools as the README configures them: DuckDB (its httpfs extension
loaded from the duckdb-extension-httpfs wheel, nothing fetched at run time),
polars (whose cloud I/O is the Rust object_store crate), pyarrow's
S3FileSystem, s3fs (fsspec) and restic. Each writes through Stowage and
reads back: the values read equal the values written, also when boto3 fetches
the stored object and it is parsed locally; restic's restored files equal the
backed-up ones by sha256."""

import hashlib
import io
import json
import os
import random
import shutil
import subprocess

import pytest

from conftest import empty_and_delete, recipe, run_recipe
from helpers import MiB, tree_digests

ROWS = 200_000


def keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", []))


def digest(i):
    return hashlib.md5(str(i).encode()).hexdigest()


# --- DuckDB -----------------------------------------------------------------

def test_duckdb_parquet_round_trip(endpoint, s3, bucket, tmp_path):
    con = run_recipe("duckdb_httpfs.py", endpoint, "con")
    assert con.execute("SELECT loaded FROM duckdb_extensions() "
                       "WHERE extension_name = 'httpfs'").fetchone() == (True,)
    con.execute(f"""CREATE TABLE rows AS SELECT range AS id, md5(range::VARCHAR) AS h,
                    range / 7 AS x, ['red', 'green', 'blue'][range % 3 + 1] AS colour
                    FROM range({ROWS})""")
    written = con.execute("SELECT * FROM rows ORDER BY id").fetchall()
    assert len(written) == ROWS

    url = f"s3://{bucket}/tables/rows.parquet"
    con.execute(f"COPY rows TO '{url}' (FORMAT parquet)")
    assert con.execute(f"SELECT * FROM read_parquet('{url}') ORDER BY id").fetchall() == written
    # Range reads of single columns, and a filter.
    assert con.execute(f"SELECT sum(id), count(DISTINCT h) FROM '{url}'").fetchone() == (
        ROWS * (ROWS - 1) // 2, ROWS)
    assert con.execute(f"SELECT h FROM '{url}' WHERE id = 123456").fetchone() == (digest(123456),)

    # What is stored is the file DuckDB wrote: fetched by boto3, read locally.
    local = tmp_path / "rows.parquet"
    s3.download_file(bucket, "tables/rows.parquet", str(local))
    assert con.execute(f"SELECT * FROM read_parquet('{local}') ORDER BY id").fetchall() == written

    # Hive partitions: one file per colour, found again by listing (glob).
    con.execute(f"COPY rows TO 's3://{bucket}/by_colour' (FORMAT parquet, PARTITION_BY (colour))")
    assert sorted({k.split("/")[1] for k in keys(s3, bucket, "by_colour/")}) == [
        "colour=blue", "colour=green", "colour=red"]
    back = con.execute(f"""SELECT id, h, x, colour FROM read_parquet(
        's3://{bucket}/by_colour/*/*.parquet', hive_partitioning = true) ORDER BY id""").fetchall()
    assert back == written
    con.close()


# --- polars (object_store) --------------------------------------------------

def test_polars_parquet_round_trip(endpoint, s3, bucket):
    import polars as pl

    storage_options = run_recipe("polars_storage.py", endpoint, "storage_options")
    df = pl.DataFrame({
        "id": range(ROWS),
        "h": [digest(i) for i in range(ROWS)],
        "x": [i / 7 for i in range(ROWS)],
        "colour": [("red", "green", "blue")[i % 3] for i in range(ROWS)],
    })
    url = f"s3://{bucket}/tables/rows.parquet"
    df.write_parquet(url, storage_options=storage_options)
    assert pl.read_parquet(url, storage_options=storage_options).equals(df)
    # A lazy scan: the footer, then only the row groups and columns it needs.
    lazy = pl.scan_parquet(url, storage_options=storage_options)
    picked = lazy.filter(pl.col("id") % 1000 == 7).select("id", "h").collect()
    assert picked.equals(df.filter(pl.col("id") % 1000 == 7).select("id", "h"))

    body = s3.get_object(Bucket=bucket, Key="tables/rows.parquet")["Body"].read()
    assert pl.read_parquet(io.BytesIO(body)).equals(df)

    df.write_parquet(f"s3://{bucket}/by_colour/", partition_by="colour",
                     storage_options=storage_options)
    assert sorted({k.split("/")[1] for k in keys(s3, bucket, "by_colour/")}) == [
        "colour=blue", "colour=green", "colour=red"]
    back = pl.scan_parquet(f"s3://{bucket}/by_colour/**/*.parquet", hive_partitioning=True,
                           storage_options=storage_options).collect()
    assert back.select(df.columns).sort("id").equals(df)


# --- pyarrow ----------------------------------------------------------------

def test_pyarrow_parquet_and_dataset(endpoint, s3, bucket):
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    arrow_fs = run_recipe("pyarrow_filesystem.py", endpoint, "s3")
    rows = 3 * ROWS
    table = pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "h": [digest(i) for i in range(rows)],
        "colour": [("red", "green", "blue")[i % 3] for i in range(rows)],
    })
    # Uncompressed, about 26 MB: pyarrow's output stream sends it as a
    # multipart upload of 10 MiB parts.
    pq.write_table(table, f"{bucket}/tables/rows.parquet", filesystem=arrow_fs,
                   compression="none")
    head = s3.head_object(Bucket=bucket, Key="tables/rows.parquet")
    assert head["ContentLength"] > 20 * MiB
    assert head["ETag"].endswith('-3"')
    assert pq.read_table(f"{bucket}/tables/rows.parquet", filesystem=arrow_fs).equals(table)
    body = s3.get_object(Bucket=bucket, Key="tables/rows.parquet")["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).equals(table)

    ds.write_dataset(table, f"{bucket}/by_colour", format="parquet", filesystem=arrow_fs,
                     partitioning=["colour"], partitioning_flavor="hive")
    found = arrow_fs.get_file_info(pafs.FileSelector(f"{bucket}/by_colour", recursive=True))
    files = sorted(i.path for i in found if i.type == pafs.FileType.File)
    assert [f.split("/")[2] for f in files] == ["colour=blue", "colour=green", "colour=red"]
    dataset = ds.dataset(f"{bucket}/by_colour", format="parquet", filesystem=arrow_fs,
                         partitioning="hive")
    assert dataset.to_table().sort_by("id").equals(table)
    red = dataset.to_table(filter=ds.field("colour") == "red")
    assert red.num_rows == rows // 3
    assert sorted(red.column("id").to_pylist()) == list(range(0, rows, 3))

    arrow_fs.delete_file(f"{bucket}/tables/rows.parquet")
    assert arrow_fs.get_file_info(f"{bucket}/tables/rows.parquet").type == pafs.FileType.NotFound
    # pyarrow keeps the emptied "directory" as a marker object.
    assert keys(s3, bucket, "tables/") == ["tables/"]


# --- s3fs (fsspec) ----------------------------------------------------------

def test_s3fs_files(endpoint, s3, bucket, tmp_path):
    fs = run_recipe("s3fs_filesystem.py", endpoint, "fs")
    small = b"hello from s3fs\n"
    fs.pipe(f"{bucket}/notes/hello.txt", small)
    assert fs.cat(f"{bucket}/notes/hello.txt") == small

    # Written a MiB at a time with 5 MiB blocks: a multipart upload.
    data = random.Random(3).randbytes(13 * MiB + 3)
    with fs.open(f"{bucket}/big/blob.bin", "wb", block_size=5 * MiB) as f:
        for i in range(0, len(data), MiB):
            f.write(data[i:i + MiB])
    head = s3.head_object(Bucket=bucket, Key="big/blob.bin")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"]
    assert fs.info(f"{bucket}/big/blob.bin")["size"] == len(data)
    assert fs.cat(f"{bucket}/big/blob.bin") == data
    # Ranged reads, through a file object and cat_file.
    with fs.open(f"{bucket}/big/blob.bin", "rb", block_size=MiB) as f:
        f.seek(7 * MiB - 5)
        assert f.read(11) == data[7 * MiB - 5:7 * MiB + 6]
    assert fs.cat_file(f"{bucket}/big/blob.bin", start=len(data) - 100) == data[-100:]

    # A directory tree up and down again.
    local = tmp_path / "tree"
    rng = random.Random(4)
    for i in range(20):
        path = local / f"d{i % 3}" / f"f{i:02}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.choice([0, 1, 1000, 70_000])))
    fs.put(str(local) + "/", f"{bucket}/tree/", recursive=True)
    assert len(keys(s3, bucket, "tree/")) == 20
    assert sorted(fs.ls(f"{bucket}/tree", detail=False)) == [
        f"{bucket}/tree/d0", f"{bucket}/tree/d1", f"{bucket}/tree/d2"]
    back = tmp_path / "back"
    fs.get(f"{bucket}/tree/", str(back) + "/", recursive=True)
    assert tree_digests(back) == tree_digests(local)

    fs.rm(f"{bucket}/tree", recursive=True)
    assert keys(s3, bucket, "tree/") == []
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/tree/d0/f00.bin")
    assert sorted(fs.find(bucket)) == [f"{bucket}/big/blob.bin", f"{bucket}/notes/hello.txt"]


# --- restic -----------------------------------------------------------------

@pytest.fixture
def restic(endpoint, s3, tmp_path):
    """Runs `restic ARGS...` in a shell that has sourced the README's
    restic-env.sh (HOME is a temporary directory holding the password file).
    The repository's bucket, `backups`, is removed afterwards."""
    binary = shutil.which("restic")
    if not binary:
        pytest.fail("restic is not installed (compat-tests/run installs it)")
    home = tmp_path / "home"
    (home / ".config" / "restic").mkdir(parents=True)
    (home / ".config" / "restic" / "password").write_text("a long passphrase for tests\n")
    env_file = home / "restic-env.sh"
    env_file.write_text(recipe("restic-env.sh", endpoint))
    assert f"{endpoint}/backups\n" in env_file.read_text()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RESTIC_"))}
    env["HOME"] = str(home)

    def run(*args, cwd=None, timeout=600):
        cmd = ["bash", "-c", '. "$0" && exec restic "$@"', str(env_file), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=cwd)
        if proc.returncode != 0:
            pytest.fail(f"restic {' '.join(map(str, args))} exited with {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    yield run
    empty_and_delete(s3, "backups")


def test_restic_backup_and_restore(restic, s3, tmp_path):
    data = tmp_path / "data"
    rng = random.Random(5)
    for i in range(30):
        path = data / f"d{i % 4}" / f"file-{i:02}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.choice([0, 1, 4096, 300_000])))
    (data / "large.bin").write_bytes(rng.randbytes(24 * MiB + 5))
    first = tree_digests(data)

    # init creates the bucket and the repository in it.
    restic("init")
    assert "config" in keys(s3, "backups")
    restic("backup", "data", cwd=tmp_path)
    # A second snapshot after a change: only new chunks are uploaded.
    (data / "d0" / "file-00.bin").write_bytes(b"edited")
    (data / "d1" / "file-01.bin").unlink()
    restic("backup", "data", cwd=tmp_path)
    second = tree_digests(data)
    assert second != first

    snapshots = json.loads(restic("snapshots", "--json").stdout)
    assert len(snapshots) == 2
    older, newer = sorted(snapshots, key=lambda s: s["time"])
    for snapshot, want in ((older, first), (newer, second)):
        target = tmp_path / f"restore-{snapshot['short_id']}"
        restic("restore", snapshot["id"], "--target", target)
        assert tree_digests(target / "data") == want

    # Every pack read back and verified; then prune deletes what the older
    # snapshot alone kept, and the repository still checks out.
    restic("check", "--read-data")
    restic("forget", "--keep-last", "1", "--prune")
    restic("check", "--read-data")
    target = tmp_path / "restore-after-prune"
    restic("restore", "latest", "--target", target)
    assert tree_digests(target / "data") == second
