# The two commands of the quick start, and what they need. Each installs what it needs.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test system-deps

demo: $(STAMP)
	$(VENV)/bin/docsight demo

test: $(STAMP) system-deps
	$(PYTHON) -m pytest

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Debian packages the tests use for real: Prometheus and promtool, headless Chromium, and LibreOffice
# without its GUI (renders EMF/WMF/SVG pictures, charts and drawings; Draw, Impress, Calc and Writer parts),
# and docker-compose, which validates deploy/compose.yaml (no Docker engine needed).
system-deps:
	@command -v promtool >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@command -v soffice >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libreoffice-core-nogui libreoffice-draw-nogui libreoffice-impress-nogui libreoffice-calc-nogui libreoffice-writer-nogui >/dev/null; }
	@command -v docker-compose >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
