"""The push engine: scan, plan, check, upload, publish (``client.roosts.push``)."""
