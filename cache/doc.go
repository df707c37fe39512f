// Package cache holds pullgate's in-memory caches: a bounded LRU whose entries expire
// (verdicts, signatures, admitted content), and a singleflight group that honours contexts.
// It knows nothing of policies or registries.
package cache
