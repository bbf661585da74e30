"""Airflow plugin: the nightly quality report as a page of the Airflow UI (logged-in users only; a town's
case workers their own town's work lists only)."""

from airflow.plugins_manager import AirflowPlugin

try:
    from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
except ImportError:  # the plugin is also imported by the scheduler and workers, which have no API
    get_user = requires_authenticated = None


def _app():
    from crosscheck.webapp import create_app

    # the user's roles in the auth manager decide what is served (crosscheck.webapp.towns_of)
    return create_app(require_user=requires_authenticated() if requires_authenticated else None,
                      current_user=get_user)


class CrosscheckUIPlugin(AirflowPlugin):
    name = "crosscheck_ui"
    fastapi_apps = [{"app": _app(), "url_prefix": "/crosscheck", "name": "crosscheck reports"}]
    external_views = [{
        "name": "质量报告 Quality report",
        "href": "crosscheck/",
        "url_route": "crosscheck-report",
        "destination": "nav",
        "category": "browse",
    }]
