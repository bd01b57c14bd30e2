# A function's code baked into the kfaas image, for a Function with `code.image` (docs/install.md).
#   buildah bud --build-arg KFAAS_IMAGE=localhost/kfaas:3.11-<hash> -f function.Dockerfile -t REF CODE_DIR
#   docker build --build-arg KFAAS_IMAGE=registry.example/kfaas:0.1.0 -f function.Dockerfile -t REF CODE_DIR
ARG KFAAS_IMAGE=kfaas:0.1.0
FROM ${KFAAS_IMAGE}
# Owned by root and read-only to the function's user (65532), as a mounted code volume would be.
COPY . /var/task/
