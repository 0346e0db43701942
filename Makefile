.PHONY: bench test
bench:
	.venv/bin/python -m bench.run --write
test:
	.venv/bin/python -m pytest
