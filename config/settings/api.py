"""The REST API: Django REST framework's defaults (authentication, throttles, errors) and the
OpenAPI schema drf-spectacular serves."""

import os

from config.settings.environment import VERSION, env_rate

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.JWTAuthentication",
        "accounts.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.api.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # DRF's parser, bounded in depth and refusing text PostgreSQL cannot store (400 instead of 500).
    "DEFAULT_PARSER_CLASSES": ["core.json_input.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "core.filters.FilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # Counted in the cache (Redis in the distributed mode, so every process shares the counts). The
    # login, registration and refresh views add the per-address "auth" throttle of their own.
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.UserOrKeyRateThrottle",
        "workflows.api.throttling.WorkflowTriggerThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("DWC_THROTTLE_AUTH", "60/min"),
        "user": env_rate("DWC_THROTTLE_USER", "1000/hour"),
        "session": env_rate("DWC_THROTTLE_SESSION", "10000/hour"),
        "trigger": env_rate("DWC_THROTTLE_TRIGGER", "60/min"),
    },
    # How many proxies in front of us append to X-Forwarded-For: the client address that throttles
    # and the login lockout count by is the one the outermost of them saw. 0 = REMOTE_ADDR, the
    # default in every mode: set it only where clients cannot reach the server but through them,
    # or each request could choose its own address (deploy check dwc.W001 explains).
    "NUM_PROXIES": int(os.environ.get("DWC_NUM_PROXIES", "0")),
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.problems.problem_exception_handler",
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Document Workflow Chain API",
    "DESCRIPTION": "Define workflows of document and automation nodes, run them and watch them.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # JSON Schema 2020-12, which can say what request text may hold (core.openapi).
    "OAS_VERSION": "3.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["core.routers.schema_paths_without_trailing_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.problems.schema_with_problem_responses",
        "core.openapi.schema_for_storable_input",
        "core.openapi.schema_with_links",
    ],
    "ENUM_NAME_OVERRIDES": {
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
        "RunStatusEnum": "workflows.models.Run.Status",
        "StepRunStatusEnum": "workflows.models.StepRun.Status",
        "LoginSessionKindEnum": "accounts.models.LoginSession.Kind",
        "CredentialKindEnum": "workflows.models.Credential.Kind",
        "ChannelKindEnum": "notifications.models.Channel.Kind",
        "DeliveryStatusEnum": "notifications.models.Delivery.Status",
        "NotificationEventTypeEnum": "notifications.services.events.EVENT_TYPES",
        "AnalyticsGranularityEnum": "analytics.models.Rollup.Granularity",
        "AnalyticsMetricEnum": "analytics.selectors.METRICS",
        "AnalyticsBucketEnum": "analytics.selectors.BUCKETS",
        "BudgetMetricEnum": "workflows.models.Budget.Metric",
        "BudgetPeriodEnum": "workflows.models.Budget.Period",
    },
}
