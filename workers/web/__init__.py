"""The customer's side: the hosted link page (``paylink web``) and its checkout gateway."""

from __future__ import annotations
