"""The paper: figures and tables rebuilt from ``results/`` alone (``make paper``, ``paper/build.py``)."""
