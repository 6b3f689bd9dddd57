# `make test` sets up .venv (Python 3.10 + NNabla) on first use, then runs the test suite.
.PHONY: test test-slow venv

venv:
	scripts/bootstrap

test: venv
	scripts/ensure-chromium
	.venv/bin/python -m pytest -q

test-slow: venv
	.venv/bin/python -m pytest -q -m slow
