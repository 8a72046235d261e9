"""The conformance matrix: the same journeys against every shape Kneo documents.

Shapes (``shapes.py``; each started once per test worker, on first use, and kept until the
session ends):

- ``one-box-sqlite``: one ``kneo service serve`` on SQLite, its worker in the process;
- ``one-box-postgresql``: the same on PostgreSQL;
- ``split-postgresql``: an API-only replica (``serve --no-worker --no-controller``), a
  ``kneo worker`` process and an elected ``kneo controller run`` on one PostgreSQL database;
- ``two-projects``: one ``serve`` with its controller on, the host project's source plus
  ``team-a`` and ``team-b`` (created by the platform administrator, each watching a signed
  repository of its own).

Journeys (each ``test_*.py`` here; a test that takes the ``shape`` fixture runs once per
shape):

- ``test_walkthrough.py``: the seed tutorial's HTTP walkthrough, bodies compared field by
  field with the reference's documented bodies (ids and times aside);
- ``test_original_clients.py``: every ``kneo-client`` 1.2.0 method and every ``kneo-dash``
  0.8.0 route (the drivers and checks of ``tests/service/test_original_clients.py``);
- ``test_console.py``: every console page for every role, ``/ui/registry`` with and without
  a controller, each project's registry and schedules pages for its members only, a decision
  from a task page;
- ``test_cli.py``: the tutorial's ``kneo run --service-url`` and ``kneo human``/``runs``/
  ``registry``/``controller`` with profiles, never touching a local database;
- ``test_studio.py``: ``kneo-studio`` 0.9.0's import and review (its test runs gate on the
  original's version number, which Kneo does not claim: not driven, see the module);
- ``test_projects.py`` (two-projects only): a project's run, task and controller are its own.

A new feature joins by adding a journey: a test function taking ``shape`` (see
``conftest.py``); it then runs in all four shapes with no new process started.
"""
