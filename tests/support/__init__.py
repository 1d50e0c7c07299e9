"""Helpers the test tiers import (fixtures stay in the conftests): where the project is and whether CI runs."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Locally a missing server or browser skips its tests with the reason; under CI (CI=true) it fails them.
UNDER_CI = os.environ.get("CI", "").lower() == "true"
