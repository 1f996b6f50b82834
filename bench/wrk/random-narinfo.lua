-- Every request asks for a fresh random narinfo hash (32 chars of Nix base32), so every one
-- misses the edge cache and goes the signing path: signed GET to the origin, 404, negative
-- entry stored. Prints the same JSON summary as report.lua.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
local chars = {}
for i = 1, #alphabet do chars[i] = alphabet:sub(i, i) end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  -- LuaJIT's first draws after seeding are poorly spread; skip a few.
  for _ = 1, 10 do math.random() end
end

local hash = {}
function request()
  for i = 1, 32 do hash[i] = chars[math.random(32)] end
  return wrk.format("GET", "/" .. table.concat(hash) .. ".narinfo")
end
