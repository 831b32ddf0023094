<?php

declare(strict_types=1);

namespace Stask\Support;

/**
 * A time from the API (RFC 3339, UTC) as the seed's model showed it: printed as
 * `Y-m-d H:i:s` (what an Eloquent date attribute prints) and with `diffForHumans()`, without
 * depending on Carbon.
 */
final class Timestamp extends \DateTimeImmutable implements \Stringable, \JsonSerializable
{
    /** The API's RFC 3339 text as a timestamp; `null` stays `null`. */
    public static function parse(?string $value): ?self
    {
        if ($value === null || $value === '') {
            return null;
        }
        return new self($value);
    }

    /** `Y-m-d H:i:s` in UTC, as the seed prints `{$task->created_at}`. */
    public function __toString(): string
    {
        return $this->setTimezone(new \DateTimeZone('UTC'))->format('Y-m-d H:i:s');
    }

    /** RFC 3339, as the API writes it. */
    public function jsonSerialize(): string
    {
        return $this->format(\DateTimeInterface::RFC3339_EXTENDED);
    }

    /**
     * "5 minutes ago" / "in 2 hours", relative to `$other` (default now), largest unit only,
     * as Carbon's default output.
     */
    public function diffForHumans(?\DateTimeInterface $other = null): string
    {
        $now = $other ?? new \DateTimeImmutable('now');
        $seconds = $now->getTimestamp() - $this->getTimestamp();
        $future = $seconds < 0;
        $seconds = abs($seconds);
        $units = [
            'year' => 365 * 86400,
            'month' => 30 * 86400,
            'week' => 7 * 86400,
            'day' => 86400,
            'hour' => 3600,
            'minute' => 60,
            'second' => 1,
        ];
        $count = 0;
        $name = 'second';
        foreach ($units as $unit => $size) {
            if ($seconds >= $size) {
                $count = intdiv($seconds, $size);
                $name = $unit;
                break;
            }
        }
        $count = max($count, 1);
        $text = $count . ' ' . $name . ($count === 1 ? '' : 's');
        return $future ? "$text from now" : "$text ago";
    }
}
