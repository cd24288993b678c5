# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""A slow or hung host device for real: an LD_PRELOAD library that stalls reads of one file.

Loaded into the daemon (`LD_PRELOAD=<built library>`), it wraps `pread`/`pread64`: a read
of the file named by SLOWREAD_PATH first stalls in a real system call, then reads the
file as usual, except the first SLOWREAD_SKIP reads of it (default 0: the daemon reads
each input once at start-up). How it stalls:

- SLOWREAD_MS=N: sleeps N milliseconds (a driver behind a slow bus);
- SLOWREAD_FIFO=PATH: opens that FIFO for reading, which blocks in the kernel until a
  writer opens it (a hung driver; writing to the FIFO releases one read).

Compiled on demand with the system's C compiler (`build()`); used by the benchmark's
`neighbour` section and by the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_target(int fd)
{
    const char *target = getenv("SLOWREAD_PATH");
    char link[64], path[PATH_MAX];
    ssize_t n;
    if (target == NULL)
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = '\0';
    return strcmp(path, target) == 0;
}

static void stall(void)
{
    static long seen;
    const char *skip = getenv("SLOWREAD_SKIP");
    if (skip != NULL && __atomic_fetch_add(&seen, 1, __ATOMIC_RELAXED) < atol(skip))
        return;
    const char *fifo = getenv("SLOWREAD_FIFO");
    const char *ms = getenv("SLOWREAD_MS");
    if (fifo != NULL) {
        char byte;
        int f = open(fifo, O_RDONLY | O_CLOEXEC);  /* blocks until a writer comes */
        if (f >= 0) {
            (void)read(f, &byte, 1);
            close(f);
        }
    } else if (ms != NULL) {
        long v = atol(ms);
        struct timespec ts = { v / 1000, (v % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (real == NULL)
        real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    if (is_target(fd))
        stall();
    return real(fd, buf, count, offset);
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
    return pread64(fd, buf, count, offset);
}
"""


class NoCompiler(RuntimeError):
    """No C compiler to build the library with."""


def build(directory: Path) -> Path:
    """Compile the library into `directory`; return its path. NoCompiler without `cc`."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise NoCompiler("no C compiler (cc) to build the slow-read library")
    source = directory / "slowread.c"
    library = directory / "slowread.so"
    source.write_text(SOURCE)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source),
                    "-ldl"], check=True, capture_output=True)
    return library


def make_hwmon(directory: Path, name: str = "slow", value: int = 42000) -> Path:
    """Make a hwmon-like directory with one input, temp1_input; return the input file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "name").write_text(f"{name}\n")
    value_file = directory / "temp1_input"
    value_file.write_text(f"{value}\n")
    return value_file
