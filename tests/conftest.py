"""Suite-wide rules.

With ``GRANDTOUR_NO_SKIPS=1`` (set by ``scripts/test``, hence CI) a skipped test fails
the run: the optional-dependency guards (``pytest.importorskip``) let a partial install
run what it can, but CI installs everything, so a skip there means a missing install
step that would otherwise hide behind a green run.

Hypothesis runs without its clock: no per-example deadline and no "too slow" health
check, which would fail a property on a loaded machine for its speed, not its result.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("grandtour", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("grandtour")


def pytest_sessionfinish(session, exitstatus):
    if not os.environ.get("GRANDTOUR_NO_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"GRANDTOUR_NO_SKIPS: {len(skipped)} test(s) skipped; every test must run here "
            "(is a dependency missing from the install?)", red=True)
        session.exitstatus = 1
