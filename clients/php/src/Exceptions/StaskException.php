<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/**
 * The one parent of every error the client throws: catch it to handle them all.
 *
 * It carries the HTTP status (0 when no answer arrived), the server's own `code` field and
 * `message` from its `{"success":false,"code":N,"message":"..."}` body, and the URL asked.
 */
class StaskException extends \RuntimeException
{
    /**
     * @param string $message What went wrong, as the server said it (or the client's own words).
     * @param int $status HTTP status of the answer; 0 when there was none.
     * @param int|null $serverCode The `code` field of the server's error body.
     * @param string|null $serverMessage The `message` field of the server's error body.
     * @param string|null $url The URL the request went to.
     */
    public function __construct(
        string $message,
        private readonly int $status = 0,
        private readonly ?int $serverCode = null,
        private readonly ?string $serverMessage = null,
        private readonly ?string $url = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $status, $previous);
    }

    /** HTTP status of the answer (0: no answer). */
    public function getStatus(): int
    {
        return $this->status;
    }

    /** The `code` field of the server's error body, when it sent one. */
    public function getServerCode(): ?int
    {
        return $this->serverCode;
    }

    /** The `message` field of the server's error body, when it sent one. */
    public function getServerMessage(): ?string
    {
        return $this->serverMessage;
    }

    /** The URL that was asked. */
    public function getUrl(): ?string
    {
        return $this->url;
    }

    /**
     * The exception of the family for an HTTP error status.
     *
     * @param array<string, mixed>|null $body The decoded error body, when it was JSON.
     */
    public static function fromResponse(int $status, ?array $body, string $raw, string $method, string $url): self
    {
        $serverMessage = is_array($body) && is_string($body['message'] ?? null) ? $body['message'] : null;
        $serverCode = is_array($body) && is_int($body['code'] ?? null) ? $body['code'] : null;
        // Without a JSON body (a proxy's page, say) the start of the raw text still says more
        // than the status alone.
        $text = $serverMessage ?? (trim($raw) !== '' ? mb_substr(trim($raw), 0, 200) : "HTTP $status");
        $message = "$method $url: $text";
        $class = match (true) {
            $status === 400 => BadRequestException::class,
            $status === 401 => UnauthorizedException::class,
            $status === 403 => ForbiddenException::class,
            $status === 404 => NotFoundException::class,
            $status === 408 => TimeoutException::class,
            $status === 409 => ConflictException::class,
            $status === 413 => PayloadTooLargeException::class,
            $status === 422 => InvalidException::class,
            $status === 502, $status === 503, $status === 504 => UnavailableException::class,
            default => ServerException::class,
        };
        return new $class($message, $status, $serverCode, $serverMessage, $url);
    }
}
