#!/usr/bin/env python3
"""What a durable small-blob write costs on this disk, two ways, outside the server.

Usage: python3 benches/small_blob_syncs.py [DIR] [BLOBS] [SIZE]
(default: a temporary directory under /tmp, 400 blobs of 4096 bytes)

- files: what the filesystem backend does per blob (create a temp file, write,
  fdatasync, rename into one of 256 prefix directories, fsync that directory);
- sqlite: the blob as a row of an SQLite database in WAL mode with
  synchronous = FULL (one log sync per commit).

Each runs with one writer, then with four (the load harness keeps four small images in
flight). With four, the SQLite side has one writer thread that puts every queued blob into
one commit (group commit). Prints milliseconds per blob. BENCHMARKS.md, "A database for
small blobs", records what it measured.
"""

import os
import queue
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

ROOT = sys.argv[1] if len(sys.argv) > 1 else None
BLOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 400
SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
WRITERS = 4


def timed(writers, work):
    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) / BLOBS * 1000


def files(root, writers):
    blobs, tmp = os.path.join(root, "blobs"), os.path.join(root, "tmp")
    for prefix in range(256):
        os.makedirs(os.path.join(blobs, f"{prefix:02x}"), exist_ok=True)
    os.makedirs(tmp, exist_ok=True)

    def work(k):
        for i in range(BLOBS // writers):
            name = f"{k}-{i}"
            temp = os.path.join(tmp, name)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(SIZE))
            os.fdatasync(fd)
            os.close(fd)
            directory = os.path.join(blobs, os.urandom(1).hex())
            os.rename(temp, os.path.join(directory, name))
            dfd = os.open(directory, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

    return timed(writers, work), None


def database(root, writers):
    path = os.path.join(root, "small.db")
    jobs, ready, commits = queue.Queue(), threading.Event(), []

    def writer():
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = full")
        db.execute("create table if not exists blob (digest text primary key, bytes blob)")
        ready.set()
        count = 0
        while (job := jobs.get()) is not None:
            batch = [job]
            while True:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            db.execute("begin immediate")
            for key, value, _ in batch:
                db.execute("insert into blob values (?, ?)", (key, value))
            db.execute("commit")
            count += 1
            for _, _, done in batch:
                done.set()
        commits.append(count)

    thread = threading.Thread(target=writer)
    thread.start()
    ready.wait()

    def work(k):
        for i in range(BLOBS // writers):
            done = threading.Event()
            jobs.put((f"{writers}-{k}-{i}", os.urandom(SIZE), done))
            done.wait()

    per_blob = timed(writers, work)
    jobs.put(None)
    thread.join()
    return per_blob, commits[0]


def main():
    root = tempfile.mkdtemp(prefix="small-blob-syncs.", dir=ROOT)
    try:
        for writers in (1, WRITERS):
            for name, way in (("files", files), ("sqlite", database)):
                directory = os.path.join(root, f"{name}-{writers}")
                os.makedirs(directory)
                per_blob, commits = way(directory, writers)
                extra = f", {commits} commits" if commits is not None else ""
                print(f"{name:6} {writers} writer(s): {per_blob:.3f} ms per blob{extra}")
    finally:
        shutil.rmtree(root)


main()
