"""Peak memory of a block of work: CUDA allocations, or a process's resident set sampled in a thread."""

from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """Peak memory above the starting level while the block runs, in bytes (`.peak`)."""

    def __init__(self, device: torch.device | None = None, pid: int | None = None):
        self.device, self.pid, self.peak = device or torch.device("cpu"), pid, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.process, self.running = psutil.Process(self.pid), True
            self.base = 0 if self.pid else self.process.memory_info().rss
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()
        return self

    def _sample(self):
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss - self.base)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.running = False
            self.sampler.join()
