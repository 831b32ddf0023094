<?php

declare(strict_types=1);

namespace Stask\Support;

/**
 * A read-only list the seed's samples use like a Laravel collection: `count()`, `foreach`,
 * `$list[0]`, `first()`, `pluck()`, `toArray()`.
 *
 * @template T
 * @implements \IteratorAggregate<int, T>
 * @implements \ArrayAccess<int, T>
 */
final class Collection implements \Countable, \IteratorAggregate, \ArrayAccess, \JsonSerializable
{
    /** @var list<T> */
    private array $items;

    /** @param iterable<T> $items */
    public function __construct(iterable $items = [])
    {
        $this->items = array_values(is_array($items) ? $items : iterator_to_array($items, false));
    }

    public function count(): int
    {
        return count($this->items);
    }

    public function isEmpty(): bool
    {
        return $this->items === [];
    }

    /** @return \ArrayIterator<int, T> */
    public function getIterator(): \ArrayIterator
    {
        return new \ArrayIterator($this->items);
    }

    /** The first item (or the first matching `$predicate`), `null` when there is none. */
    public function first(?callable $predicate = null): mixed
    {
        foreach ($this->items as $item) {
            if ($predicate === null || $predicate($item)) {
                return $item;
            }
        }
        return null;
    }

    /** The items matching `$predicate`. */
    public function filter(callable $predicate): self
    {
        return new self(array_filter($this->items, $predicate));
    }

    /** One property of every item. @return list<mixed> */
    public function pluck(string $property): array
    {
        return array_map(fn ($item) => is_array($item) ? ($item[$property] ?? null) : $item->$property, $this->items);
    }

    /** @return list<T> */
    public function all(): array
    {
        return $this->items;
    }

    /** @return list<mixed> */
    public function toArray(): array
    {
        return array_map(fn ($item) => is_object($item) && method_exists($item, 'toArray') ? $item->toArray() : $item, $this->items);
    }

    public function jsonSerialize(): array
    {
        return $this->toArray();
    }

    public function offsetExists(mixed $offset): bool
    {
        return isset($this->items[$offset]);
    }

    public function offsetGet(mixed $offset): mixed
    {
        return $this->items[$offset] ?? null;
    }

    public function offsetSet(mixed $offset, mixed $value): void
    {
        throw new \LogicException('a Stask collection is read-only');
    }

    public function offsetUnset(mixed $offset): void
    {
        throw new \LogicException('a Stask collection is read-only');
    }
}
