"""Runners: one artifact on one backend × device × precision, behind one small interface."""

from pytest_awml.runners.base import Backend, Runner, RunnerSource

__all__ = ["Backend", "Runner", "RunnerSource"]
