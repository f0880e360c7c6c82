"""POST /v1/images/edits (and /images/edits): wiring only. The work is ``editgate.pipeline.edit``."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import File, Form, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import api, secrets, web
from editgate.fal import FalClient
from editgate.pipeline import Services, edit
from editgate.settings import Settings
from editgate.storage import ResultStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)

settings = Settings.from_env()
services = Services.create(
    settings,
    FalClient(
        settings.fal_queue_url,
        partial(secrets.secret_text, settings.fal_key_secret_name, settings.secrets_max_age_seconds),
        poll_interval=settings.fal_poll_interval_seconds,
    ),
    ResultStore(settings.results_bucket, settings.results_prefix, settings.presign_expiry_seconds),
)
web.install(app, partial(secrets.api_keys, settings.api_keys_secret_name, settings.secrets_max_age_seconds))

Files = Annotated[UploadFile | list[UploadFile] | None, File()]


@app.post("/v1/images/edits")
@app.post("/images/edits")
def create_edit(
    prompt: Annotated[str, Form()],
    image: Files = None,
    image_list: Annotated[UploadFile | list[UploadFile] | None, File(alias="image[]")] = None,
    mask: Files = None,
) -> Response[str]:
    uploads = [
        f for group in (image, image_list) for f in (group if isinstance(group, list) else [group]) if f
    ]
    fields = web.form_fields(app, declared=("prompt", "image", "image[]", "mask"))
    request, inputs = api.request_from_form(prompt=prompt, images=uploads, mask=mask, fields=fields)
    result = edit(
        request,
        inputs,
        services,
        request_id=web.request_id(app),
        deadline=web.deadline(app, settings.request_deadline_seconds),
    )
    metrics.add_metric(name="ImagesEdited", unit=MetricUnit.Count, value=len(result.images))
    metrics.add_metric(name="CostUSD", unit=MetricUnit.Count, value=result.cost_usd)
    return web.json_response(app, api.images_response(result))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
