"""Deployment assets shipped with govhub: scenarios, PostgreSQL migrations, server configs."""

from pathlib import Path

OPS_DIR = Path(__file__).resolve().parent
SCENARIO_DIR = OPS_DIR / "scenarios"
MIGRATIONS_DIR = OPS_DIR / "migrations"
