-- Argo CD health check for personalize-watch.dev/SolutionVersionWatch (Lua 5.1).
-- Healthy: the last listing succeeded. Progressing: not listed yet, a new spec not listed yet, or
-- a transient error being retried. Degraded: Stalled (a spec or IAM change is needed), Overdue
-- (no new job within spec.expectNewJobWithin) or a job stuck past spec.stuckAfter.
-- Suspended: spec.suspend. Failed jobs are reported by Events and counts, not as ill health.
local hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Polling is suspended (spec.suspend)"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first listing"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the new spec to be listed"
  return hs
end
local ready = nil
local stalled = nil
local overdue = nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  elseif condition.type == "Overdue" then
    overdue = condition
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if overdue ~= nil and overdue.status == "True" then
  hs.status = "Degraded"
  hs.message = "Overdue: " .. (overdue.message or "")
  return hs
end
if obj.status.counts ~= nil and obj.status.counts.stuck ~= nil and obj.status.counts.stuck > 0 then
  hs.status = "Degraded"
  hs.message = obj.status.counts.stuck .. " jobs PENDING or IN PROGRESS for longer than spec.stuckAfter"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
