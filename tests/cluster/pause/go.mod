module kfaas.dev/tests/pause

go 1.22
