"""The verification job claims due purchases in the order they arrived: an index that walks them so.

The job claims a batch with `status = 'pending' AND next_verification_at <= <tick start> AND
(created_at, id) after the last one it claimed ... ORDER BY created_at, id LIMIT n FOR UPDATE SKIP
LOCKED` (server/jobs/verification.py). ix_purchases_due is ordered by next_verification_at, so each
claim sorted every due purchase to find the first n: with 100,000 due, most of a batch's time. This
partial index holds the pending purchases in claim order, so a claim reads n entries from where the
last one stopped (docs/adr/0032-verification-in-batches.md). It is raw DDL, like migration 0's
indexes, which the models do not describe; the models' state is migration 5's, unchanged.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        "CREATE INDEX IF NOT EXISTS ix_purchases_pending_claim ON purchases (created_at, id) WHERE status = 'pending';"
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return "DROP INDEX IF EXISTS ix_purchases_pending_claim;"


MODELS_STATE = (
    "eJztXVtT4zgW/iuuvDRdlaEhkNDTu7VVIcBMdoB0QdjummXLo9hK4sWR0rYMpHr57yvJd1"
    "t24txwHL10E0lHlr9zJJ2bpZ+1CdahaR8+2NCqfVF+1hCYQPpHrLyu1MB0GpayAgIGJm/o"
    "0Ba8BAxsYgGN0MIhMG1Ii3Roa5YxJQZGtBQ5pskKsUYbGmgUFjnI+OFAleARJGM+kH//hx"
    "YbSIev0PZ/Tp/UoQFNPTZOQ2fP5uUqmU152cND9+KKt2SPG6gaNp0JCltPZ2SMUdDccQz9"
    "kNGwuhFE0AIE6pHXYKP0XtcvckdMC4jlwGCoeligwyFwTAZG7e9DB2kMA4U/if1z+g9vaJ"
    "Fm9z/MC/fXwQc6CtUCSMcTlTU/+PjhY60AnhpGjBcGIgy8n2/us0KQeGmNPbTze/vu4KTF"
    "e59im4wsXskhrL1xQkCAS8oZESIPJ8Aw0+B3xsASgx8QJPCnQ90M8j5AMZhV9bbXV+8v+6"
    "q6AqS1CXhVTYhGZEx/NpqnORj/q33HYaatOM6YzhJ37tx6VQ23juEd4jsG9hjq6hTY9gu2"
    "BGLeh69EjLSAdD2Y+wUh6OFU3wLqOSD3L7/3Wc8T2/5hRrE9uGl/57BPZl7Nde/2N795hB"
    "ed6955ggUWpnUFJNxv/85gO96ivRbZPm4tINrHrUzJZlVxVOkeYTwLcD3HFD6AxNCGRAlw"
    "B5Rqm+gGq8y6Jfi817uOSfB5NymiDzfnlxRsjjVtZBBe3L3tJxDWLMiQUAFJo3xBa4gxgW"
    "KY45QJqHWP9ND/Y6tSHd0fEX7Z3J7Y795c3vfbN19j3Lho9y9ZTSO2lvilB8kJEHSifOv2"
    "f1fYT+XP3u1lcqMN2vX/rLExAYdglb6eCvQoNn6xX/TGFKLhU2RjZgUDoD29AEtXYzWR9Q"
    "wO6WPHVNF6gsgWzECP/uqPO2gCDmlaCjzN8M7tq8+62t2tJCz1pnZ8HtF9lGGqTjAiY3NG"
    "gSPAXBG4jtfpjdtnn3VZeQBpE2QDrgWvCb5+2GNV0Zs6lkZVObgiYl+9bioLk4U1aNtc4Z"
    "1hh6wKF+9kAbA8TWC3sNoqQjsjTmzzxA2ctZ3Gq0I0X4BpQoGO5YPZQ7CP6T/zIf0W9FQR"
    "oWP4TRqTBKITgMCIj5J1x4i997/GIwO1CYGTKakJ/FCx+nqeP8pkLan+ypuWzDF1boy6KM"
    "NmF7qmGKAJmfAEoLyekREbwi+/NhonJ2eNo5PW5+bp2Vnz89Fn2paPN111lmcWdX9jBk5M"
    "ufYtnvI6p955Wm7BPeXNsKWszCSttDNLa2dGWW5M04zuIpi1oE2Xnk7l3OREPOzeXrKlqI"
    "A1XkjVKLiLxmxywS6atNmzd9G0p6A8u6gM72wjvMM5r7JIQpoDVwYFI3svjZNWLtrTyttN"
    "OeKt7J20ldpIDdt2ltpFY4RyC92JLRS+Tg3a3RLcjlOWit2bD+7tGpsde6kZHSFbA4N3R4"
    "vaOf5a8JnuccuwOE4puVxmLrM4ulpMA42QrFMNLS9T52iYKcMojq5AtcQWNEboDzjjAHfp"
    "OADSRIH/RIbabkKacpzSYgu8BJZQVKDou9M3hm7Qv9O+77QvLmtv72Np3kAWU0JCX21QV8"
    "+zMCdeK2lc7qFxyf9PYZ9tUfrtK+mcbS7knG3mOGebSZvSG7MaxN+ndLZBROhkFigsUDMm"
    "wBQjP6enpALjdnXodbmDzMnhxcVlp3vTvj5o1huJDCyfS6dHMtdN5rpJB0oZct3wcOh9mL"
    "B8okOP9bG7i5jMLtpGOkhBzdmVKYHaHAhbts4cyrRUmPdLYV5afyurunZUGhVtyIJZKphg"
    "B4lUiDxwk6Qrw7s7zjwf6eNfC0BtE2ARlWlUYl1NjHKcKk9P2909SAgx1bcSAEKkF4YvSr"
    "PX4PlJ/BqYMitWFTsgcyd8VhflWVdLOvOlHSztYGkHrzE25bvPC8anEmQyRpUfo5pEQhkr"
    "xqmiUZHdhHZurCohXLF41R2V+Ltup58XsJIf3knnzm47d4QiJvD1ZIlitusnZ0bM9QXVvk"
    "JLOWC6al3hLqS6MjQsmyg6mNEChYyh8tDvKLzrj1/4b/95fn0gUPQXIIrmm7xRRmzqOY+I"
    "YMYbj2B6qHyzDEIgUjAyZ8pgxivoKEYjOgCMIp0c0ME8Q+tTUPKJbuKfPv5NoTqPrhjk8B"
    "E9oj6jZkB/sJUnOFMM230Luo55L8L/cod9qPSxRbBhQ8VlE30g/MXdYRm1zQdVV2ys/MUp"
    "/nrke4NuK8DmA2WPGGKL/927u6FcM0xCB07fA5gmLbYg5SGlUBCkY1ds8AwV2t5dTGmFYn"
    "i7zWGtvpI/j4+viC0ZEKzbkHzX9N5FzMicT42AhaBACcs1JEOi8piOm3XJFTIX/UlXRLWN"
    "0ki9NgGoTGWTqWzvbR7MTWVLrQBrwLRqIdwkqNFVr0wJgqJjOnIU4cRpHgvowckTRWREdL"
    "8ioksF7NYYqivpgrHOWB1xBO6D7CTNkKKCaZrrPwZPOuz3ymHvTPUl2R2nlOzeDXZLg2ud"
    "9qvvvysIaYJsu5pXKUGVVuyGrNhFAlxpgyst4WkO+KeILYj/KjGbMgj1XA4kJvUiXFjJlA"
    "0AFdivUbCzjdZYNE4aqvtlqMJXAi0ETOHWlXMgWZyscqeobOS7N+kU2KxTQHMsCyJtJlAT"
    "8o8EihJW0DtwMnfpyJTikwo5XqYQ6Qy0dcG6AaeL7z5eaqUQUJdnyShR+PYZWsbQ0HhyUe"
    "wo1jjWmWehZtLPPx61pAh7p6I2jk/PTj+ftE6Dw1CDkrwzUNPZvoiqB2oCpqJ+paw+pIdp"
    "JzxM0n+8V+yW/uO9YrfM79+IH1kmlsnEsrLBKV3yG3fJi1bWNeAqv+kR4Csz9xZDNjNzb7"
    "lIUk68I/8+rjSril9fs9ylXOU87WDlu2y8u3wE0aLwlp/sWJF7p9A7RorKs6OXIRq55mCQ"
    "5yFVB8D0V78C/kcBtfQ/ik4beAYGf78lcRbSS6QFSE+BoS8rzAlSia8AX+n1qbzXJ2X+LZ"
    "c/JDYVC+YOLWsolmGnXvNR2qulDLk3ZIoShoK7M3PShcJLOmWy0H4lC8kEFvlVSwagFqQd"
    "2MT9aryk6RXBGJe6GSVOK1WW0qos4tu3i7M8SSuvwykzp4OMVAsOIcvmK3SFg5i6CteDbi"
    "GvNZwog1nRT2AipCvqaSXDXQYwSwKnDGBuNYCZnNHbwback3/+x0LplXOzwbaCnoIrSM0L"
    "C16ZYFQTuAui1fU8n8HQbagOaUvpOdhDz8ETFCwG2eqY17yC32IcHx0tYtYeHWXbtUcpvw"
    "FE7N0Fwp17gHWESp5gPfcEa1vDU+giVECQ41TvLM8jEw9cP1tJHTQuWsVW6SiNtB6SF+2F"
    "Dy8gtAmy6lnBzYUW4WbOItxML8Lyi4e98jfJ2Hfl2b1S7Ht9Rljb0Q1yjYUWWFBXzzO/AG"
    "ulmljaXvtoe2GNf9++zFKVIJVrVWnXqsR1RtgqbKrEqapoeq/dXnEhK7ayRWmkvZK+h6uY"
    "qRJSVFBgW6cLCGzrNFNgWVUyA8LGjqUV92OkCCXcReAutkQkyGQUL/mZrEM0PCkkvxGSd5"
    "Zc29FYyKfEu5oOCTBE11n98753m+UxCkiSOqKhEeV/imnY2/0OMaIdPtY+/Hz78OXLf22M"
    "Bo+1DWmJDJyYguhDfHDT/p5Ev3PdO08KOuvgXBSvfierE1qGNq6JbE63pp5rcYZtSmNtZh"
    "7oI1xmBaf3eDpXaVPN13OMT7Yh+Qwtu6B+FiGpoMawmVMC6aQqogG7zSuI7kZCpfSJBIpy"
    "2LM3twhJSTa3jStj1djM3v4PsWLzsg=="
)
