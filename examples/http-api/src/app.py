"""A small HTTP API written with aws-lambda-powertools, unchanged from how it runs on Lambda."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

app = APIGatewayHttpResolver()
TODOS: list[dict[str, object]] = []


@app.get("/todos")
def list_todos() -> dict[str, object]:
    return {"todos": TODOS}


@app.post("/todos")
def add_todo() -> Response[str]:
    body = app.current_event.json_body or {}
    todo = {"id": len(TODOS) + 1, "title": body.get("title", "untitled")}
    TODOS.append(todo)
    return Response(
        status_code=201,
        content_type="application/json",
        body=__import__("json").dumps(todo),
        cookies=[f"last-todo={todo['id']}"],
    )


def handler(event: dict[str, object], context: object) -> dict[str, object]:
    return app.resolve(event, context)
