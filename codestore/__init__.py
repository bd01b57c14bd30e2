"""The code store role (`kfaas code-store`) and the pods' fetch step (`kfaas fetch-code`)."""
