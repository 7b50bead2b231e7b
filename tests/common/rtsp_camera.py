#!/usr/bin/python3
"""An IP camera for tests: GStreamer's RTSP server with a live test pattern and a tone.

Usage: rtsp_camera.py PORT CODEC [USER PASSWORD]

Serves rtsp://127.0.0.1:PORT/cam: CODEC video (h264 or h265, 640x360 at 25 fps, a
keyframe every second) and AAC audio (48 kHz mono), to every client at once. With USER
and PASSWORD the camera asks for Digest authentication, as cameras do. It prints
"ready" once it listens, and runs until killed.

Run it with Debian's /usr/bin/python3: another python3 earlier on PATH may lack gi.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0 "
    "! rtph264pay name=pay0 pt=96 config-interval=1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
    "! rtph265pay name=pay0 pt=96 config-interval=1",
}


def main():
    port, codec = sys.argv[1], sys.argv[2]
    Gst.init(None)
    launch = (
        "( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 "
        f"! {VIDEO[codec]} "
        "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=1 "
        "! avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if len(sys.argv) == 5:
        user, password = sys.argv[3], sys.argv[4]
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.from_string(
                "viewer, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )[0]
        )
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
