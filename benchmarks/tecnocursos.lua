-- The TecnoCursos workload for wrk: benchmarks/tecnocursos.py writes the plan, this plays it.
--
-- wrk -s benchmarks/tecnocursos.lua URL -- PLAN SALT
--
-- PLAN is a text file of tab-separated lines, written by benchmarks/tecnocursos.py:
--   T <token>                                   an access token (the first is user 0)
--   R <method> <path> <user> <content-type> <body>
--                                               one request; <user> indexes the tokens
--                                               ("-": no Authorization), "-" no body type
-- The requests are played in order and then again from the start. A body holding #N#
-- gets SALT-<counter> there, so a write repeated on a later pass still changes its row.
-- done() prints the percentiles wrk does not (p95) and the count of each non-2xx/3xx
-- status as bench.<name>=<value> lines, which benchmarks/server.py's wrk() reads.

local plan = {}
local counter = 0
local salt = "0"
-- A global: done() reads it from each thread with thread:get().
statuses = {}
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   salt = args[2] or "0"
   local tokens = {}
   for line in io.lines(args[1]) do
      local fields = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do
         fields[#fields + 1] = field
      end
      if fields[1] == "T" then
         tokens[#tokens + 1] = fields[2]
      elseif fields[1] == "R" then
         local headers = {}
         if fields[4] ~= "-" then
            headers["Authorization"] = "Bearer " .. tokens[tonumber(fields[4]) + 1]
         end
         if fields[5] ~= "-" then
            headers["Content-Type"] = fields[5]
         end
         local body = fields[6]
         if body == nil or body == "" then
            plan[#plan + 1] = wrk.format(fields[2], fields[3], headers, nil)
         elseif body:find("#N#", 1, true) then
            plan[#plan + 1] = { fields[2], fields[3], headers, body }
         else
            plan[#plan + 1] = wrk.format(fields[2], fields[3], headers, body)
         end
      end
   end
   if #plan == 0 then
      error("no requests in " .. tostring(args[1]))
   end
end

function request()
   counter = counter + 1
   local entry = plan[(counter - 1) % #plan + 1]
   if type(entry) == "string" then
      return entry
   end
   local body = entry[4]:gsub("#N#", salt .. "-" .. counter)
   return wrk.format(entry[1], entry[2], entry[3], body)
end

function response(status, headers, body)
   if status >= 400 or status < 200 then
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   for _, p in ipairs({ 50, 90, 95, 99 }) do
      io.write(string.format("bench.p%d=%.3f\n", p, latency:percentile(p) / 1000))
   end
   local failed = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses") or {}) do
         failed[status] = (failed[status] or 0) + count
      end
   end
   for status, count in pairs(failed) do
      io.write(string.format("bench.status_%d=%d\n", status, count))
   end
end
