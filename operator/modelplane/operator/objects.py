"""Kubernetes objects as the operator reads and writes them: JSON objects, whose values
are whatever the object's schema says (the dynamic client and kopf hand them over so)."""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]
