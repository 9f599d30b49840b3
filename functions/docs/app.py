"""docs: the API's OpenAPI document and Swagger UI, deployed only when the template parameter
``ExposeApiDocs`` is true (public then; nothing else is reachable through this function).

    GET /openapi.json   the document, generated from the code by ``make openapi`` (a test keeps it fresh)
    GET /docs           Swagger UI, with Powertools' bundled assets inlined (no CDN)

No database, no AWS calls, no shared layer code: it serves one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.swagger_ui import html as swagger_html

DOCUMENT = (Path(__file__).resolve().parent / "openapi.json").read_text(encoding="utf-8")
ASSETS = Path(swagger_html.__file__).resolve().parent

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()


@app.get("/openapi.json")
def openapi() -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, DOCUMENT, headers={"Cache-Control": "max-age=300"})


@app.get("/docs")
def docs() -> Response[str]:
    page = swagger_html.generate_swagger_html(
        spec=DOCUMENT.replace("</", "<\\/"),
        swagger_js=(ASSETS / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        swagger_css=(ASSETS / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
        persist_authorization=False,
    )
    return Response(200, content_types.TEXT_HTML, page, headers={"Cache-Control": "max-age=300"})


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
