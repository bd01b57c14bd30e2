#!/usr/bin/env bash
# Deploy, publish, canary and remove a function with nothing but the AWS CLI (v1 or v2).
#
#   KFAAS_ENDPOINT=http://127.0.0.1:9000 examples/aws-cli/deploy.sh
#
# KFAAS_ENDPOINT is the gateway (`kfaas dev` prints it; in a cluster, the gateway's Service or
# Ingress). Credentials are the CLI's usual ones: with `kfaas dev --auth none` any will do.
set -euo pipefail

: "${KFAAS_ENDPOINT:?set KFAAS_ENDPOINT to the kfaas gateway, e.g. http://127.0.0.1:9000}"
NAME="${FUNCTION_NAME:-hello-cli}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
lambda() { aws --endpoint-url "$KFAAS_ENDPOINT" --output text lambda "$@"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Zip a handler that says which code and which version answered.
package() {
  cat > "$work/app.py" <<PY
def handler(event, context):
    return {"code": "$1", "version": context.function_version}
PY
  rm -f "$work/function.zip"
  (cd "$work" && python3 -m zipfile -c function.zip app.py)
}
invoke() {
  lambda invoke --function-name "$1" --payload '{}' "$work/out.json" > /dev/null
  echo "$1 -> $(cat "$work/out.json")"
}

# 2. Create it and wait until it can be invoked.
package one
lambda create-function --function-name "$NAME" --runtime python3.11 --handler app.handler \
  --role "arn:aws:iam::default:role/default" --zip-file "fileb://$work/function.zip" \
  --query 'State' > /dev/null
lambda wait function-active-v2 --function-name "$NAME"
invoke "$NAME"

# 3. Freeze it as version 1, then update the code and freeze version 2.
v1="$(lambda publish-version --function-name "$NAME" --query Version)"
package two
lambda update-function-code --function-name "$NAME" --zip-file "fileb://$work/function.zip" \
  --query 'LastUpdateStatus' > /dev/null
lambda wait function-updated-v2 --function-name "$NAME"
v2="$(lambda publish-version --function-name "$NAME" --query Version)"
lambda wait published-version-active --function-name "$NAME" --qualifier "$v2"
echo "published versions $v1 and $v2"

# 4. A canary: the alias `live` sends 10% of its invocations to version 2.
lambda create-alias --function-name "$NAME" --name live --function-version "$v1" \
  --routing-config "AdditionalVersionWeights={$v2=0.1}" --query AliasArn > /dev/null
invoke "$NAME:live"

# 5. Shift all traffic to version 2.
lambda update-alias --function-name "$NAME" --name live --function-version "$v2" \
  --routing-config "AdditionalVersionWeights={}" --query FunctionVersion > /dev/null
invoke "$NAME:live"

# 6. Remove it all: deleting the function deletes its versions and aliases.
lambda delete-alias --function-name "$NAME" --name live
lambda delete-function --function-name "$NAME"
echo "deleted $NAME"
