-- wrk script: POST /v1/register with a small JPEG (FACEREC_BENCH_IMAGE) as multipart.
local path = os.getenv("FACEREC_BENCH_IMAGE")
local f = assert(io.open(path, "rb"))
local image = f:read("*a")
f:close()
local boundary = "facerecbenchboundary"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n"
  .. "Content-Disposition: form-data; name=\"subject\"\r\n\r\nbench\r\n"
  .. "--" .. boundary .. "\r\n"
  .. "Content-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
  .. "Content-Type: image/jpeg\r\n\r\n" .. image .. "\r\n"
  .. "--" .. boundary .. "--\r\n"
