"""The "Train" workspace: live training on a worker thread, curves, run history and test results.

The window makes one ``TrainingSession`` (session.py) and hands it to ``TrainingPanel(window, session)``
(panel.py) and to the other workspaces that follow training. The project document owns what was
trained (trained.py) and the run history (run_history.py), so this package imports nothing eagerly.
"""
