"""Drive Microsoft's Python Dataverse SDK (PowerPlatform-Dataverse-Client),
unmodified, against a Dataverse environment: create, retrieve, update, a
filtered and ordered list paged to the end, table listing, delete, and the
404 of a deleted row.

Input (argv[1], JSON): env_url (exactly as the server prints it),
authority_host, tenant, client_id, pem_path (a PEM holding the private key
and the certificate). TLS trust comes from REQUESTS_CA_BUNDLE.

Output (stdout, JSON): what each step saw, for the Rust test to assert on.
"""

import json
import sys
from importlib.metadata import version

from azure.identity import CertificateCredential
from PowerPlatform.Dataverse import DataverseClient, col
from PowerPlatform.Dataverse.core.errors import HttpError


def main():
    cfg = json.loads(sys.argv[1])
    credential = CertificateCredential(
        cfg["tenant"],
        cfg["client_id"],
        certificate_path=cfg["pem_path"],
        authority=cfg["authority_host"],
        disable_instance_discovery=True,
    )
    out = {"versions": {"PowerPlatform-Dataverse-Client": version("PowerPlatform-Dataverse-Client")}}
    with DataverseClient(cfg["env_url"], credential) as client:
        first = client.records.create("account", {"name": "SDK 1", "revenue": 10})
        out["created"] = first
        got = client.records.retrieve("account", first, select=["name", "revenue"])
        out["retrieved_name"] = got["name"]
        client.records.update("account", first, {"name": "SDK 1 updated"})
        out["updated_name"] = client.records.retrieve("account", first, select=["name"])["name"]
        ids = client.records.create(
            "account", [{"name": "SDK %d" % i, "revenue": i * 100} for i in range(2, 8)]
        )
        out["created_many"] = len(ids)

        listed = client.records.list(
            "account",
            filter=col("revenue") >= 200,
            select=["name", "revenue"],
            orderby=["revenue desc"],
            page_size=2,
        )
        out["listed"] = [r["name"] for r in listed]
        pages = list(
            client.records.list_pages(
                "account", filter=col("revenue") >= 200, select=["name"], page_size=2
            )
        )
        out["pages"] = len(pages)

        tables = client.tables.list(select=["LogicalName", "EntitySetName"])
        out["tables"] = sorted(t["LogicalName"] for t in tables)

        client.records.delete("account", first)
        out["after_delete"] = client.records.retrieve("account", first)
        try:
            client.records.update("account", first, {"name": "gone"})
            out["update_deleted"] = "no error"
        except HttpError as e:
            out["update_deleted"] = e.status_code
    print(json.dumps(out))


if __name__ == "__main__":
    main()
