#!/bin/sh
# The `secrets-check` service of the compose files: refuse to start the stack with a secret
# that is missing, still the .env.example placeholder, or unsafe. Every other service waits for
# it (depends_on: service_completed_successfully), so nothing starts (and PostgreSQL never
# initialises its database) with such a value.
#
# Each secret of .env reaches this container as CHECK_<NAME>. A value is refused when it is
# empty, holds "change-me" (every placeholder of .env.example does), is shorter than 16
# characters, or has a character other than letters, digits, '-' and '_' (the values go into a
# JSON connection, a PostgreSQL URL and a JSON password file unquoted).
set -eu

names=$(env | sed -n 's/^CHECK_\([A-Za-z0-9_]*\)=.*/\1/p' | sort)
if [ -z "$names" ]; then
    echo "secrets-check: no CHECK_<NAME> variable to check" >&2
    exit 2
fi

failed=0
for name in $names; do
    eval "value=\${CHECK_$name}"
    problem=""
    case "$value" in
        "") problem="is empty" ;;
        *change-me*) problem="is still the placeholder of .env.example" ;;
        *[!A-Za-z0-9_-]*) problem="has a character other than letters, digits, '-' and '_'" ;;
    esac
    if [ -z "$problem" ] && [ "${#value}" -lt 16 ]; then
        problem="is shorter than 16 characters"
    fi
    if [ -n "$problem" ]; then
        echo "secrets-check: $name in .env $problem" >&2
        failed=1
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "secrets-check: set each in .env to a value of its own, e.g. the output of" >&2
    echo "  python3 -c \"import secrets; print('local-' + secrets.token_hex(16))\"" >&2
    exit 1
fi
echo "secrets-check: $(echo "$names" | wc -w | tr -d ' ') secrets accepted"
