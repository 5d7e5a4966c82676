"""Leaderboard submissions: pack, validate by machine, verify by re-running, build the page.

    python -m llmrl_bench.leaderboard tracks                          # the tracks and their sweeps
    python -m llmrl_bench.leaderboard pack RESULTS --track T --name N --authors A --out DIR|X.tar.gz
    python -m llmrl_bench.leaderboard validate SUBMISSION [--incoming] # one line per failure
    python -m llmrl_bench.leaderboard unpack X.tar.gz --into leaderboard/submissions
    python -m llmrl_bench.leaderboard verify SUBMISSION               # every run checked, 3 re-trained
    python -m llmrl_bench.leaderboard build [--root leaderboard]      # Markdown + HTML

Modules: ``tracks`` (the protocol), ``bundle`` (layout, checksums, safe archives),
``identity`` (code identity), ``protocol`` (configs as data), ``aggregate`` (recomputation),
``pack``, ``validate``, ``sandbox`` (the verifier's child process), ``verify``, ``build``. Protocol and tolerances: ``docs/leaderboard.md``.
"""
