"""A fixture set of realistic files: ones holding a secret, and harmless look-alikes.

The secrets are fake but shaped like real ones (a Telegram bot token as seed 004 had in
``direct-telegram.ts``, an AWS key pair, PEM keys, passwords in .env and YAML, provider
tokens).  Each is assembled from pieces so that no scanner (guardian's own included)
flags this source file itself.  ``tests/capture/test_secrets.py`` asserts on them and
docs/secrets.md reports the figures.
"""

from __future__ import annotations


def _j(*parts: str) -> str:
    return "".join(parts)


TELEGRAM = _j("7012345678", ":", "AAHk3vX9qLm2Pz8RtYw4NcB6dFgJ1sE0uKo")
AWS_ID = _j("AKIA", "Q3EGRWXYZ7PLMN4B")
AWS_SECRET = _j("9dJk3LmN0pQrStUvWxYz", "1A2b3C4d5E6f7G8h9I0j")
RSA_BODY = _j("MIIEowIBAAKCAQEAx7Fq9lJ2mVd3", "pXk1N0r8sT6uW4yZ2aB5cD7eF9gH1iJ3kL5mN7oP9qR1")
PASSWORD = _j("hunter2", "-Xq9!", "prod")
GITHUB = _j("ghp_", "R7d2KfL9xQ4mN8pV3sT6wY1zA5bC0eG2hJ4k")
SLACK = _j("xoxb-", "2048117325-4096558391-", "Zq8xF3kP9mT2vL6nR1sW4yB7")
STRIPE = _j("sk_live_", "51HxYzQ2eZvKYlo2C8Xp4Ld3")
OPENAI = _j("sk-", "Ab3De5Gh7Jk9Mn1Pq3St", "T3BlbkFJ", "Uv5Wx7Yz9Ab1Cd3Ef5Gh")
JWT = _j(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
)
SENDGRID = _j("SG.", "ngeVfQFYQlKU0ufo8x5d1A", ".", "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr")
HEX_KEY = _j("9f8e7d6c5b4a3928", "1706f5e4d3c2b1a0")

# path -> (content, the text that must not reach a mirror)
SECRETS: dict[str, tuple[str, str]] = {
    "src/telegram/direct-telegram.ts": (
        "import fetch from 'node-fetch';\n\n"
        f"const BOT_TOKEN = '{TELEGRAM}';\n"
        "export async function send(chatId: number, text: string) {\n"
        "  return fetch(`https://api.telegram.org/bot${BOT_TOKEN}/sendMessage`, {\n"
        "    method: 'POST', body: JSON.stringify({ chat_id: chatId, text }),\n"
        "  });\n}\n",
        TELEGRAM,
    ),
    "config/bot.py": (
        f'import os\n\nBOT_TOKEN = "{TELEGRAM}"\n\n\ndef chat_url():\n    return f"https://api.telegram.org/bot{{BOT_TOKEN}}"\n',
        TELEGRAM,
    ),
    "deploy/notify.sh": (
        f'#!/bin/sh\ncurl -s "https://api.telegram.org/bot{TELEGRAM}/sendMessage" -d chat_id=42 -d text="$1"\n',
        TELEGRAM,
    ),
    "deploy/aws_config.ini": (
        f"[default]\nregion = eu-west-1\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n",
        AWS_ID,
    ),
    "app/settings.py": (
        f'DEBUG = False\nAWS_ACCESS_KEY_ID = "{AWS_ID}"\nAWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\nBUCKET = "uploads"\n',
        AWS_SECRET,
    ),
    "deploy/tls.yaml": (
        "tls:\n  cert: /etc/tls/cert.pem\n  key: |\n    -----BEGIN RSA PRIVATE KEY-----\n"
        f"    {RSA_BODY}\n    -----END RSA PRIVATE KEY-----\n",
        RSA_BODY,
    ),
    "scripts/bootstrap.sh": (
        "#!/bin/sh\ncat > ~/.ssh/deploy <<'KEY'\n-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"{RSA_BODY}\n-----END OPENSSH PRIVATE KEY-----\nKEY\nchmod 600 ~/.ssh/deploy\n",
        RSA_BODY,
    ),
    "config/database.yml": (
        f'production:\n  adapter: postgresql\n  username: app\n  password: "{PASSWORD}"\n  host: db\n',
        PASSWORD,
    ),
    "docker-compose.yml": (
        f"services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {PASSWORD}\n",
        PASSWORD,
    ),
    "src/db.go": (
        'package db\n\nconst dsn = "postgres://admin:' + PASSWORD + '@db.internal:5432/app"\n',
        PASSWORD,
    ),
    "app/db.py": (
        f'import psycopg\n\nconn = psycopg.connect(host="db", user="app", password="{PASSWORD}")\n',
        PASSWORD,
    ),
    "settings/prod.json": (
        '{\n  "service": "billing",\n  "api_key": "' + HEX_KEY + '",\n  "retries": 3\n}\n',
        HEX_KEY,
    ),
    "src/github.js": (f"const octokit = new Octokit({{ auth: '{GITHUB}' }});\n", GITHUB),
    "src/slack.py": (f'client = WebClient(token="{SLACK}")\n', SLACK),
    "lib/payments.rb": (f'Stripe.api_key = "{STRIPE}"\n', STRIPE),
    "src/ai.py": (f'client = OpenAI(api_key="{OPENAI}")\n', OPENAI),
    "tests/session.http": (f"GET /me\nAuthorization: Bearer {JWT}\n", JWT),
    "config/mail.php": (f"<?php\nreturn ['sendgrid' => '{SENDGRID}'];\n", SENDGRID),
    "k8s/api-secret.yaml": (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ntype: Opaque\n"
        "data:\n  token: " + "czNjcjN0LXRva2VuLWZvci1hcGk=" + "\n",
        "czNjcjN0LXRva2VuLWZvci1hcGk=",
    ),
}

# Harmless files that look like secrets: none of these should be reported.
LOOKALIKES: dict[str, str] = {
    "tests/test_ids.py": (
        "import uuid\n\n\ndef test_parse():\n"
        '    assert parse("123e4567-e89b-12d3-a456-426614174000") == uuid.UUID(int=0x123E4567)\n'
        '    assert str(uuid.uuid5(uuid.NAMESPACE_DNS, "a")) != "00000000-0000-0000-0000-000000000000"\n'
    ),
    "package-lock.json": (
        '{\n  "packages": {\n    "node_modules/left-pad": {\n      "version": "1.3.0",\n'
        '      "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQ9wAH2Mb6'
        'zN/8cCiUK0z7E4k0ywnnnpKo6Xr7Ju8Xq+3lQ=="\n'
        "    }\n  }\n}\n"
    ),
    "poetry.lock": (
        '[[package]]\nname = "click"\nversion = "8.1.7"\nfiles = [\n'
        '    {file = "click-8.1.7.tar.gz", '
        'hash = "sha256:ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de"},\n'
        "]\n"
    ),
    "go.sum": "golang.org/x/text v0.14.0 h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\n",
    "src/auth.py": (
        "import os\n\n"
        'password = os.environ["DB_PASSWORD"]\n'
        "api_key = settings.API_KEY\n"
        "token = get_token(user)\n"
        "secret = None\n"
    ),
    "config.example.yaml": "db:\n  user: app\n  password: ${DB_PASSWORD}\n  host: localhost\n",
    "README.md": (
        "# Bot\n\nSet the token in the environment, never in code:\n\n"
        "    export BOT_TOKEN=<your-bot-token>\n\nThen run `python -m bot`.\n"
    ),
    "CHANGELOG.md": (
        "## 1.2.0\n\n- fix retries (3f786850e387550fdab836ed7e6dc881de23001b)\n"
        "- bump deps (89e6c98d92887913cadf06b2adb97f26cde4849b)\n"
    ),
    "src/colors.ts": "export const palette = { primary: '#1f6feb', danger: '#d1242f', muted: '#6e7781' };\n",
    "src/i18n.py": 'MESSAGES = {"password_label": "Password", "password_hint": "At least 12 characters"}\n',
    "web/index.html": (
        '<link rel="icon" href="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ'
        'AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==">\n'
    ),
    "tests/test_hashing.py": (
        "import hashlib\n\n\ndef test_empty_digest():\n"
        '    assert hashlib.sha256(b"").hexdigest() == (\n'
        '        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"\n    )\n'
    ),
    "tests/fixtures.py": 'FAKE_HEX = "0123456789abcdef" * 2\nZEROS = "0" * 40\nBEEF = "deadbeef" * 5\n',
    ".github/workflows/ci.yml": (
        "jobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@b4ffde65f46336ab88eb53be808477a3936bae11\n"
        "      - run: pytest\n"
    ),
    "src/sri.html": (
        '<script src="https://cdn.example.org/lib.js" '
        'integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC" '
        'crossorigin="anonymous"></script>\n'
    ),
}
