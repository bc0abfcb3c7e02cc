-- wrk script for the signed API: cycles through pre-signed requests (examples/sign_requests.rs),
-- one distinct nonce each. Set SIGNED_FILE and SIGNED_PATH in the environment.
local file = os.getenv("SIGNED_FILE")
local path = os.getenv("SIGNED_PATH")
local reqs = {}
local n = 0
local i = 0

function init(args)
  local f = assert(io.open(file, "r"))
  local template = {}
  for field in f:read("*l"):gmatch("[^\t]+") do
    local name, value = field:match("^([^:]+): (.*)$")
    template[#template + 1] = { name, value }
  end
  for line in f:lines() do
    local nonce, sig = line:match("^(%S+) (%S+)$")
    local headers = {}
    for _, nv in ipairs(template) do
      local v = nv[2]
      if v == "%N" then v = nonce elseif v == "%S" then v = sig end
      headers[nv[1]] = v
    end
    n = n + 1
    reqs[n] = wrk.format("GET", path, headers)
  end
  f:close()
end

function request()
  i = i + 1
  if i > n then i = 1 end -- wrapped: replays, refused (counted as non-2xx)
  return reqs[i]
end

