"""Drive a running Mozpool cluster the way mozpoolclient 0.1.3 does.

mozpoolclient is the Python client mozharness used to get boards from
Mozpool. This test repeats its calls with the
same library (python-requests), the same URLs, headers and bodies, and
checks what mozpoolclient relies on: the request URL returned at creation
is absolute, ends in "/" and works for status/, details/, renew/ and
return/; renew and return answer 204; a slash-less GET is answered 303 and
followed.

Environment:
  MOZPOOL_SERVER         base URL of one node, e.g. https://127.0.0.1:8010
                         (trust its CA with REQUESTS_CA_BUNDLE)
                         (required)
  MOZPOOL_READY_TIMEOUT  seconds to wait for the request to be ready
                         (default 300)

Run with: python3 -m unittest -v test_client
"""

import getpass
import json
import os
import socket
import time
import unittest

import requests

# mozpoolclient's defaults.
HTTP_TIMEOUT = 10
GOOD_POST_STATUSES = (200, 201, 202, 204, 302)

B2GBASE = "http://builds.example.com/b2g/latest/"
FINAL_FAILURES = ("closed", "failed_device_not_found", "failed_bad_image",
                  "failed_bad_device", "failed_device_busy")


class MozpoolConflict(Exception):
    """mozpoolclient's MozpoolConflictException: the server answered 409."""


class MozpoolError(Exception):
    """mozpoolclient's MozpoolException: any other bad status."""


class MozpoolHandler(object):
    """The calls of mozpoolclient 0.1.3's MozpoolHandler, unchanged in what
    goes over the wire."""

    def __init__(self, mozpool_api_url):
        self.mozpool_api_url = mozpool_api_url.rstrip("/")
        self.mozpool_timeout = HTTP_TIMEOUT

    @staticmethod
    def check_mozpool_status(status):
        if 200 <= status < 400:
            return
        if status == 409:
            raise MozpoolConflict()
        raise MozpoolError("mozpool status not ok, code %d" % status)

    def url_get(self, url):
        r = requests.get(url, timeout=self.mozpool_timeout)
        self.check_mozpool_status(r.status_code)
        return r

    def partial_url_get(self, partial_url):
        return self.url_get(self.mozpool_api_url + partial_url)

    def url_post(self, url, data, good_statuses=GOOD_POST_STATUSES):
        r = requests.post(url, data=json.dumps(data),
                          headers={"Content-Type": "application/json"},
                          timeout=self.mozpool_timeout)
        self.check_mozpool_status(r.status_code)
        if r.status_code not in good_statuses:
            return None
        return r

    def partial_url_post(self, partial_url, data, **kw):
        return self.url_post(self.mozpool_api_url + partial_url, data, **kw)

    # Devices.

    def query_device_status(self, device):
        return self.partial_url_get("/api/device/%s/status/" % device).json()

    def query_device_details(self, device):
        devices = self.partial_url_get("/api/device/list/?details=1").json()["devices"]
        for d in devices:
            if d["name"] == device:
                return d
        raise MozpoolError("device %s not found" % device)

    def device_ping(self, device):
        # No trailing slash: mozpoolclient relies on the 303.
        return self.partial_url_get("/api/device/%s/ping" % device)

    # Requests.

    def request_device(self, device, image, assignee, duration=1800,
                       pxe_config=None, b2gbase=None, environment="any"):
        if image == "b2g":
            assert b2gbase is not None, "b2gbase must be set for b2g images"
        data = {"assignee": assignee, "duration": duration, "image": image,
                "environment": environment, "b2gbase": b2gbase}
        if pxe_config:
            data["pxe_config"] = pxe_config
        return self.partial_url_post("/api/device/%s/request/" % device, data)

    def renew_request(self, request_url, new_duration):
        return self.url_post(request_url + "renew/", {"duration": new_duration},
                             good_statuses=(204,))

    def close_request(self, request_url):
        return self.url_post(request_url + "return/", {}, good_statuses=(204,))

    def query_request_status(self, request_url):
        return self.url_get(request_url + "status/").json()

    def query_request_details(self, request_url):
        return self.url_get(request_url + "details/").json()


def default_assignee():
    return "%s-%s" % (getpass.getuser(), socket.gethostname())


def parse_time(s):
    """Parse the API's naive ISO-8601 UTC times (fraction optional)."""
    return time.strptime(s.split(".")[0], "%Y-%m-%dT%H:%M:%S")


class MozpoolClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        server = os.environ.get("MOZPOOL_SERVER")
        if not server:
            raise unittest.SkipTest("MOZPOOL_SERVER is not set")
        cls.server = server.rstrip("/")
        cls.mph = MozpoolHandler(cls.server)
        cls.ready_timeout = float(os.environ.get("MOZPOOL_READY_TIMEOUT", "300"))

    def assertLog(self, log):
        self.assertIsInstance(log, list)
        for entry in log:
            self.assertEqual(sorted(entry), ["id", "message", "source", "timestamp"])
            parse_time(entry["timestamp"])

    def wait_ready(self, url):
        deadline = time.time() + self.ready_timeout
        state = None
        while time.time() < deadline:
            status = self.mph.query_request_status(url)
            self.assertEqual(sorted(status), ["log", "state"])
            self.assertLog(status["log"])
            state = status["state"]
            if state == "ready":
                return status
            if state in FINAL_FAILURES:
                self.fail("request %s ended in %s; log: %s" % (url, state, status["log"][-10:]))
            time.sleep(1)
        self.fail("request %s not ready after %.0f s (last state %s)" % (url, self.ready_timeout, state))

    def test_version(self):
        r = self.mph.partial_url_get("/api/version/")
        self.assertEqual(r.json(), {"version": "4.2.1"})

    def test_request_validation(self):
        assignee = default_assignee()
        # b2g needs its boot-config key: a None value is still a value, an
        # absent key is a 400 (mozpoolclient always sends b2gbase).
        r = requests.post(self.server + "/api/device/any/request/",
                          data=json.dumps({"assignee": assignee, "duration": 60, "image": "b2g"}),
                          headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
        self.assertEqual(r.status_code, 400, r.text)
        self.assertIn("error", r.json())
        with self.assertRaises(MozpoolError):
            self.mph.request_device("any", "no-such-image", assignee, b2gbase=None)
        with self.assertRaises(MozpoolError):
            self.mph.request_device("any", "b2g", assignee, duration="soon", b2gbase=B2GBASE)

    def test_b2g_request_lifecycle(self):
        mph = self.mph
        assignee = default_assignee()

        # Create, as mozharness does: "any" device, b2g with its b2gbase.
        r = mph.request_device("any", "b2g", assignee, duration=3600, b2gbase=B2GBASE)
        self.assertIsNotNone(r, "request_device got a status mozpoolclient does not accept")
        self.assertEqual(r.status_code, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        req = r.json()["request"]
        self.assertEqual(sorted(req), ["assigned_device", "assignee", "boot_config", "environment",
                                       "expires", "id", "image", "requested_device", "url"])
        self.assertIsInstance(req["id"], int)
        self.assertEqual(req["requested_device"], "any")
        self.assertEqual(req["assignee"], assignee)
        self.assertEqual(req["image"], "b2g")
        self.assertEqual(req["environment"], "any")
        self.assertEqual(json.loads(req["boot_config"]), {"b2gbase": B2GBASE})
        parse_time(req["expires"])
        url = req["url"]
        self.assertTrue(url.startswith(("http://", "https://")), url)
        self.assertTrue(url.endswith("/api/request/%d/" % req["id"]), url)
        try:
            self._lifecycle(url, req)
        finally:
            # Never leave a board held if an assertion failed.
            requests.post(url + "return/", data="{}", timeout=HTTP_TIMEOUT)

    def _lifecycle(self, url, req):
        mph = self.mph

        # It is listed while open.
        listed = mph.partial_url_get("/api/request/list/").json()["requests"]
        self.assertIn(req["id"], [x["id"] for x in listed])

        # Poll status/ until ready.
        self.wait_ready(url)

        # details/: the request object itself, not wrapped.
        details = mph.query_request_details(url)
        self.assertEqual(details["id"], req["id"])
        self.assertEqual(details["url"], url)
        self.assertEqual(details["image"], "b2g")
        device = details["assigned_device"]
        self.assertTrue(device, "a ready request has a device")

        # The device carries the image and the request.
        dev = mph.query_device_details(device)
        self.assertEqual(dev["image"], "b2g")
        self.assertEqual(dev["request_id"], req["id"])
        self.assertEqual(json.loads(dev["boot_config"]), {"b2gbase": B2GBASE})

        # renew/: 204, empty body, and a later expiry.
        time.sleep(1.1)
        r = mph.renew_request(url, 7200)
        self.assertIsNotNone(r, "renew did not answer 204")
        self.assertEqual(r.status_code, 204)
        self.assertEqual(r.content, b"")
        renewed = mph.query_request_details(url)
        self.assertGreater(parse_time(renewed["expires"]), parse_time(details["expires"]))
        self.assertEqual(mph.query_request_status(url)["state"], "ready")

        # Device status/.
        st = mph.query_device_status(device)
        self.assertEqual(sorted(st), ["log", "state"])
        self.assertIsInstance(st["state"], str)
        self.assertLog(st["log"])
        self.assertTrue(st["log"], "an imaged device has log lines")

        # ping without the trailing slash: 303, followed by requests.
        r = mph.device_ping(device)
        self.assertEqual(r.status_code, 200)
        self.assertEqual([h.status_code for h in r.history], [303])
        self.assertTrue(r.url.endswith("/api/device/%s/ping/" % device), r.url)
        self.assertEqual(r.json(), {"success": True})

        # return/: 204, the request is closed and the device released.
        r = mph.close_request(url)
        self.assertIsNotNone(r, "return did not answer 204")
        self.assertEqual(r.status_code, 204)
        self.assertEqual(r.content, b"")
        self.assertEqual(mph.query_request_status(url)["state"], "closed")
        self.assertEqual(mph.query_request_details(url)["assigned_device"], "")
        self.assertIsNone(mph.query_device_details(device)["request_id"])
        listed = mph.partial_url_get("/api/request/list/").json()["requests"]
        self.assertNotIn(req["id"], [x["id"] for x in listed])
        listed = mph.partial_url_get("/api/request/list/?include_closed=1").json()["requests"]
        self.assertIn(req["id"], [x["id"] for x in listed])

        # Returning again is still 204 (the event is ignored).
        self.assertEqual(mph.close_request(url).status_code, 204)


if __name__ == "__main__":
    unittest.main()
