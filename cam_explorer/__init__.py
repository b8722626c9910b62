"""CAM Explorer's command line, an application beside ``app.py`` on top of the ``cam_core`` library.

``cam-explorer {predict,explain,evaluate,sanity,methods,layers,visualize,audit,audit-report}`` (also
``python -m cam_explorer`` and, for existing users, ``python -m cam_core``). Modules: ``parsing`` (argparse,
text to values through the method registry), ``commands`` (the command table and the map commands' shared
set-up), one module per command group (``info_commands``, ``explain_command``, ``evaluate_command``,
``sanity_command``, ``visualize_command``, ``audit_command``, ``audit_report_command``), ``writers`` (JSON
lines, files, progress on stderr) and ``cli`` (``main``: parse, dispatch, turn errors into exit codes).

Nothing heavy is imported here; ``cli`` imports every command module, which registers its commands.
"""
