"""Batch overnight renders: the queue, claims, local worker processes per GPU, lockstep groups, Ray, reports.
Importing this package loads no torch (a worker sets CUDA_VISIBLE_DEVICES first)."""
